"""Column lists and names shared by the study analyses' result tables."""

from figureground.conditions import NO_BACKGROUND, NO_FOREGROUND

SEED_COLUMNS = ["participant", "image_id", "condition", "model", "weights", "layer", "distance"]
RSA_COLUMNS = [
    "participant", "model", "weights", "layer", "level", "view", "stratum", "condition", "given",
    "time", "value", "ci_low", "ci_high", "p_perm", "p_perm_fwer", "metric", "method",
    "model_metric", "n_conditions",
]  # fmt: skip
ENCODING_COLUMNS = [
    "participant", "model", "weights", "layer", "condition", "time", "value", "metric",
    "n_folds", "folds_by", "n_images",
]  # fmt: skip
PARTITION_COLUMNS = [
    "participant", "model", "weights", "layer", "component", "time", "value", "metric",
]  # fmt: skip
CEILING_COLUMNS = [
    "participant", "analysis", "estimate", "level", "method", "time", "value", "lower",
    "upper", "n_images", "n_rdms",
]  # fmt: skip
CLUSTER_COLUMNS = [
    "analysis", "model", "weights", "layer", "level", "view", "stratum", "curve", "tail",
    "cluster",
    "start", "stop", "p_value", "t_sum", "n_participants", "min_p_attainable", "significant",
]  # fmt: skip
POOLED = "pooled"
MEAN = "mean"
FIGURE, GROUND = NO_BACKGROUND, NO_FOREGROUND
ALL_IMAGES = "all"
# RSA comparison -> (noise-ceiling method, permutation-test method or None)
CEILING_METHOD = {"spearman": "spearman", "pearson": "corr", "cosine": "cosine"}
PERMUTATION_METHOD = {"spearman": "spearman", "pearson": "pearson", "cosine": None}
BOOT_MEMORY_BYTES = 2**28  # square RDMs held at once by the bootstrap (time points x n x n)

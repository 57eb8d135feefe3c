"""Scale: THINGS-size synthetic inputs (:mod:`.synth`) and Dask execution (:mod:`.dask_run`)."""

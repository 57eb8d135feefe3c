"""The three image conditions, named once: the original photo, its figure and its ground."""

ORIGINAL = "original"
NO_BACKGROUND = "no_background"  # the figure: the object on the fill colour
NO_FOREGROUND = "no_foreground"  # the ground: the object's region inpainted
CONDITIONS = (ORIGINAL, NO_BACKGROUND, NO_FOREGROUND)

"""The pieces of a study's analyses stage; ``figureground.analysis.runner`` ties them."""

"""figureground: do brain responses to object photos follow the figure or the ground?"""

__version__ = "0.1.0"

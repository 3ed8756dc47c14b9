"""The names of the segmentation methods, apart from their code: the Slicer panel lists them when
the module loads, before scipy (which ``segmentation`` needs, and Slicer does not ship) is installed."""

#: Ready-made methods a panel lists (no value or file needed), the default first.
METHODS = ("otsu3", "otsu2", "otsu4", "otsu5")
#: Every accepted form, for help texts and error messages.
METHOD_HELP = f"{METHODS[0]}, otsuN (N = 2..8 classes), threshold:T, labels:FILE"

"""The label convention of the whole project (the article's): cat = 1, dog = 0."""

LABELS = {"cat": 1, "dog": 0}
CLASS_NAMES = ("dog", "cat")  # CLASS_NAMES[label]

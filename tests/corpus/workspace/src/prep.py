# Code file referenced by the malformed corpus; never run.
print("prep")

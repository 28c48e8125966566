"""Review → correct → adapt: reviewed lines saved as a training set (`corrections`)."""

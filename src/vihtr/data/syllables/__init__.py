"""Real handwritten syllables from the VNOnDB pen strokes: kept per writer (`bank`; the lines are split by
`vihtr.inference.syllable_split`, which needs a model) and composed into new lines of any text (`compose`);
contact sheets to check them (`sheets`)."""

"""Real handwritten syllables from the VNOnDB pen strokes: lines split into syllables (`segment`), kept per
writer (`bank`), and composed into new lines of any text (`compose`); contact sheets to check them (`sheets`)."""

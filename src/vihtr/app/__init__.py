"""The web app: a page and a JSON API around the predictor (`python -m vihtr.app` or `vihtr serve`)."""

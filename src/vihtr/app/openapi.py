"""The web API described by hand in OpenAPI 3 (served at /openapi.json)."""

from __future__ import annotations

from vihtr.inference.domains import DOMAINS


def _error(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _form(properties: dict, required: list[str] | None = None) -> dict:
    """A request body of multipart/form-data fields."""
    schema = {"type": "object", **({"required": required} if required else {}), "properties": properties}
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


def _images_form() -> dict:
    """The request of /api/predict and /api/pages: image files and an optional domain."""
    return _form(
        {
            "images": {"type": "array", "items": {"type": "string", "format": "binary"}},
            "image": {"type": "string", "format": "binary"},
            "domain": {
                "type": "string",
                "enum": list(DOMAINS),
                "description": "what the lines say (default: the model's); the response's `domain` tells "
                "which was used",
            },
        }
    )


def _files_errors(too_many: str) -> dict:
    """The failures of a request of image files."""
    return {
        "400": _error("no files, no file is a readable image, or an unknown domain"),
        "413": _error(f"{too_many}, request body too large, or no file under the pixel limits"),
        "415": _error("the request is not multipart/form-data"),
        "500": _error("a server failure, logged under the `reference` it answers"),
        "503": _error("the models could not be loaded"),
    }


def openapi_spec(
    version: str, max_files: int, max_upload_mb: float, max_pixels: int, max_request_pixels: int
) -> dict:
    limits = (
        f"At most {max_files} files, {max_upload_mb:g} MB per request, {max_pixels:,} pixels per image "
        f"and {max_request_pixels:,} per request. A file that cannot be read gets an entry with `error`; "
        "the request fails (400/413, with the same entries) only when no file can be read."
    )
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "vihtr",
            "version": version,
            "description": "Vietnamese handwritten text-line recognition: send line images, get their text.",
        },
        "paths": {
            "/": {
                "get": {
                    "summary": "The web page (HTML): show samples or your own line images and read them",
                    "responses": {"200": {"description": "HTML page", "content": {"text/html": {}}}},
                }
            },
            "/static/{filename}": {
                "get": {
                    "summary": "The page's script and style sheet",
                    "parameters": [
                        {"name": "filename", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {"200": {"description": "the file"}, "404": _error("no such file")},
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness, whether the models are loaded, version and limits",
                    "responses": {
                        "200": {
                            "description": "server status",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}
                            },
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This description",
                    "responses": {
                        "200": {"description": "OpenAPI 3 document", "content": {"application/json": {}}}
                    },
                }
            },
            "/api/predict": {
                "post": {
                    "summary": "Read the text of one or more line images",
                    "description": f"multipart/form-data with the images under the field `images` (or `image`). {limits}",
                    "requestBody": _images_form(),
                    "responses": {
                        "200": {
                            "description": "one entry per image, in upload order (unreadable ones with `error`)",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/PredictResponse"}
                                }
                            },
                        },
                        **_files_errors("too many files or form parts"),
                    },
                }
            },
            "/api/pages": {
                "post": {
                    "summary": "Read whole handwritten pages: find the lines, read them top to bottom",
                    "description": "multipart/form-data with up to 4 page images under the field `images` "
                    f"(or `image`). Size and pixel limits as for /api/predict: {max_upload_mb:g} MB per "
                    f"request, {max_pixels:,} pixels per image.",
                    "requestBody": _images_form(),
                    "responses": {
                        "200": {
                            "description": "one entry per page, in upload order (unreadable ones with `error`)",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/PagesResponse"}}
                            },
                        },
                        **_files_errors("more than 4 pages"),
                    },
                }
            },
            "/api/corrections": {
                "post": {
                    "summary": "Save one reviewed line (image + checked text) to the server's training set",
                    "description": "Only when the server runs with `--corrections-dir DIR`: the image is "
                    "saved under a name the server chooses and the text (made NFC) in DIR/labels.tsv; "
                    "saving the same image again replaces its text.",
                    "requestBody": _form(
                        {
                            "image": {"type": "string", "format": "binary"},
                            "text": {"type": "string", "description": "what the line says"},
                        },
                        required=["image", "text"],
                    ),
                    "responses": {
                        "200": {
                            "description": "saved",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "saved": {"type": "string", "description": "images/<name>"},
                                            "text": {"type": "string"},
                                            "replaced": {"type": "boolean"},
                                            "lines": {"type": "integer", "description": "lines in the set"},
                                        },
                                    }
                                }
                            },
                        },
                        "400": _error(
                            "no image or text, not an image, an empty text, or characters the model cannot learn"
                        ),
                        "404": _error("the server saves no corrections (no --corrections-dir)"),
                        "413": _error("the image is over the size or pixel limit"),
                        "415": _error("the request is not multipart/form-data"),
                        "507": _error("the folder holds its limit of lines"),
                    },
                }
            },
            "/favicon.ico": {
                "get": {
                    "summary": "The page's icon (SVG)",
                    "responses": {"200": {"description": "the icon", "content": {"image/svg+xml": {}}}},
                }
            },
            "/api/samples": {
                "get": {
                    "summary": "Random sample line images from the server's samples folder",
                    "parameters": [
                        {
                            "name": "n",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": max_files, "default": 3},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "up to n distinct samples",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Samples"}}
                            },
                        },
                        "400": _error("n is not an integer in range"),
                    },
                }
            },
            "/api/samples/{name}": {
                "get": {
                    "summary": "One sample image, by the name /api/samples gave",
                    "parameters": [
                        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {"description": "the image", "content": {"image/*": {}}},
                        "404": _error("no such sample"),
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}, "reference": {"type": "string"}},
                },
                "Prediction": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "description": "the uploaded file's name"},
                        "text": {"type": "string", "description": "the line's text, Unicode NFC"},
                        "confidence": {
                            "type": "number",
                            "minimum": 0,
                            "maximum": 1,
                            "description": "expected share of the line's characters read right (calibrated on held-out lines when the release carries a calibration)",
                        },
                        "char_confidences": {"type": "array", "items": {"type": "number"}},
                        "review": {
                            "type": "boolean",
                            "description": "under the release's review threshold (`/health`'s "
                            "confidence.review_below): worth checking by hand",
                        },
                        "ms": {"type": "number", "description": "time spent on this line"},
                        "domain": {
                            "type": "string",
                            "description": "the domain that read this line: general, prose or address "
                            "(`auto` picks one per line); empty when it could not be read",
                        },
                        "warning": {
                            "type": "string",
                            "description": "why the reading is not to be trusted (with `review` true and "
                            "confidence 0): e.g. the image holds a page of several lines, not one",
                        },
                        "error": {"type": "string", "description": "why this file could not be read"},
                    },
                },
                "Page": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "description": "the uploaded file's name"},
                        "text": {
                            "type": "string",
                            "description": "the lines top to bottom, joined by a newline",
                        },
                        "width": {"type": "integer"},
                        "height": {"type": "integer"},
                        "lines": {
                            "type": "array",
                            "items": {
                                "allOf": [
                                    {"$ref": "#/components/schemas/Prediction"},
                                    {
                                        "type": "object",
                                        "properties": {
                                            "box": {
                                                "type": "array",
                                                "items": {"type": "integer"},
                                                "description": "x0, y0, x1, y1 on the page, in pixels",
                                            }
                                        },
                                    },
                                ]
                            },
                        },
                        "ms": {"type": "number"},
                        "error": {"type": "string", "description": "why this file could not be read"},
                    },
                },
                "PagesResponse": {
                    "type": "object",
                    "properties": {
                        "pages": {"type": "array", "items": {"$ref": "#/components/schemas/Page"}},
                        "model": {"type": "array", "items": {"type": "string"}},
                        "domain": {"type": "string"},
                        "total_ms": {"type": "number"},
                    },
                },
                "PredictResponse": {
                    "type": "object",
                    "properties": {
                        "predictions": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Prediction"},
                        },
                        "model": {"type": "array", "items": {"type": "string"}},
                        "domain": {"type": "string", "description": "the decoding domain asked for"},
                        "total_ms": {"type": "number"},
                    },
                },
                "Samples": {
                    "type": "object",
                    "properties": {
                        "samples": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {"name": {"type": "string"}, "url": {"type": "string"}},
                            },
                        }
                    },
                },
                "Health": {
                    "type": "object",
                    "properties": {
                        "status": {"type": "string", "enum": ["ok"]},
                        "models_loaded": {"type": "boolean"},
                        "model": {"type": "array", "items": {"type": "string"}},
                        "model_error": {"type": "string"},
                        "confidence": {
                            "type": "object",
                            "description": "whether line confidences are calibrated, and the release's review threshold",
                            "properties": {
                                "calibrated": {"type": "boolean"},
                                "review_below": {"type": "number", "nullable": True},
                            },
                        },
                        "version": {"type": "string"},
                        "limits": {"type": "object"},
                    },
                },
            }
        },
    }

"""The OCR example handler: EasyOCR's English models served as `models.ocr.handler:OCR`."""

"""The content service: submissions, their review, books, uploads and publishing."""

"""What clients send, checked in one place for the API and the pages: the request schemas,
JSON body and query validation, and the opaque page cursors."""

"""The HTTP API: the aiohttp app, one module per resource, request bodies and fields, the OpenAPI
document.
"""

"""``webservice.php``: request parsing, the operation registry and the plugin API's parts, the
envelope and its error codes, the OpenAPI description."""

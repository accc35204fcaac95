"""One module per resource: operations (POST /v1/<operation>), jobs, health."""

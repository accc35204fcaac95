"""One module per resource: operations (POST /v1/<operation>), experiments, jobs, health, the
explorer page and the offline API docs."""

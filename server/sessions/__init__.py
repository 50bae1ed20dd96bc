"""Chat sessions: the REST resources and the manager that starts runs."""

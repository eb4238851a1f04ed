"""The admin API (/api/v1): what staff do in the admin, for scripts and other tools, with
personal access tokens (service.admin.apitokens). See docs/api.md."""

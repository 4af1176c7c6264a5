"""Apache Airflow provider for the Banking API: mutual TLS, OAuth2 client credentials, shared tokens."""

__version__ = "0.1.0"

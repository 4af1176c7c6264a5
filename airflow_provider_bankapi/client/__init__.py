"""The pure client layer: requests, cryptography and the standard library, never Airflow."""

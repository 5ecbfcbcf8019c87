//! The OCI distribution API client.

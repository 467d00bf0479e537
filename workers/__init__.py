"""RQ job functions and the worker entry point; thin wrappers around ecomflux_app."""

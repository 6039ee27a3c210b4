// Intentionally empty: this package exists to build the protoc plugins.

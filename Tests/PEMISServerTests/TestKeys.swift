import PEMISStore

/// The data keys of the tests that open a registry or shards directly (not through a server,
/// which keeps its key file beside its data directory).
let testKeys = DataKeys.ephemeral()

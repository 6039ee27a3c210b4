import PEMISStore

/// The data keys every store test seals with: made once per test process, in memory.
let testKeys = DataKeys.ephemeral()

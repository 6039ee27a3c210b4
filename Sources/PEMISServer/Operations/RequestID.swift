public import Logging
internal import PEMISDomain

/// Each call's request id: 16 hex digits, in every log line written while the call runs
/// (`rpc.request_id`, through ``metadataProvider``), in its audit entry, and sent to the client
/// as `pemis-request-id` (response metadata, and the trailers of an error). A user who reports
/// a failure quotes it; the operator finds the call's log lines and audit entry by it.
public enum RequestID {
  @TaskLocal public static var current: String = ""

  /// The metadata key the client receives it under.
  public static let metadataKey = "pemis-request-id"

  static func make() -> String {
    var generator = SystemRandomNumberGenerator()
    return generator.next().bytes.lowercaseHex
  }

  /// Adds `rpc.request_id` to the log lines of a call (given to `LoggingSystem.bootstrap`).
  public static let metadataProvider = Logger.MetadataProvider {
    current.isEmpty ? [:] : ["rpc.request_id": .string(current)]
  }
}

extension UInt64 {
  fileprivate var bytes: [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: self >> (56 - 8 * $0)) } }
}

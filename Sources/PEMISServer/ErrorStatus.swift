internal import Foundation
// Public: the conformances of public types below are public, and so is what they conform to.
public import GRPCCore
internal import Logging
public import PEMISDomain
public import PEMISStore
internal import PEMISWire

// How errors become statuses (docs/ARCHITECTURE.md, "Errors"). The rules (PEMISDomain) and the
// store (PEMISStore) throw typed errors and know nothing of gRPC; this layer, the one that speaks
// gRPC, says which status each kind is. GRPCCore converts a thrown `RPCErrorConvertible` itself,
// so a handler just throws, and the access-control interceptor only has to catch what nobody
// typed (``ErrorStatus``).

extension DomainError: RPCErrorConvertible {
  public var rpcErrorCode: RPCError.Code {
    switch kind {
    case .invalidArgument: .invalidArgument
    case .failedPrecondition: .failedPrecondition
    case .notFound: .notFound
    case .alreadyExists: .alreadyExists
    }
  }

  /// Names the field, then says what is wrong: "application_id: cannot approve …".
  public var rpcErrorMessage: String { description }
}

extension StoreError: RPCErrorConvertible {
  public var rpcErrorCode: RPCError.Code {
    switch kind {
    case .notFound: .notFound
    case .alreadyExists: .alreadyExists
    case .failedPrecondition: .failedPrecondition
    case .invalidArgument: .invalidArgument
    case .permissionDenied: .permissionDenied
    case .unavailable: .unavailable
    case .aborted: .aborted
    case .resourceExhausted: .resourceExhausted
    case .dataLoss: .dataLoss
    case .internal: .internalError
    }
  }

  public var rpcErrorMessage: String { message }
}

extension CalendarError: RPCErrorConvertible {
  /// The server lacks a year's calendar (or has a broken one): the request is fine, the server's
  /// configuration is not yet.
  public var rpcErrorCode: RPCError.Code { .failedPrecondition }
  public var rpcErrorMessage: String { description }
}

extension FieldViolationsError: RPCErrorConvertible {
  var rpcErrorCode: RPCError.Code { rpcError.code }
  var rpcErrorMessage: String { rpcError.message }
  var rpcErrorMetadata: Metadata { rpcError.metadata }
}

/// The last word on what a client sees when a call fails: never UNKNOWN, never an empty message.
///
/// Typed errors arrive here already converted (above); what is left is an error nobody expected
/// (a bug, a library's error type): the client gets INTERNAL with a reference, and the detail —
/// which may hold personal data or SQL — goes only to the server's log under that reference.
struct ErrorStatus: Sendable {
  let logger: Logger
  /// Calls refused for load (UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED) are what a crowd makes at
  /// will: their warnings share one limit (shared by every call: ``Tenancy``), the rest counted
  /// in the next line that gets through. Every call is still in the audit log.
  var sheddingLog = RateLimitedLog(linesPerWindow: 60, window: .seconds(60))

  /// The status a call that threw `error` ends with.
  func status(for error: any Error, method: String) -> RPCError {
    var status: RPCError
    switch error {
    case let error as RPCError:
      status = error
    case let error as any RPCErrorConvertible:
      status = RPCError(error)
    case is CancellationError:
      status = RPCError(code: .cancelled, message: "the call was cancelled", cause: error)
    default:
      return unexpected(error, method: method)
    }
    if status.code == .unknown { return unexpected(error, method: method, message: status.message) }
    if status.message.isEmpty { status.message = Self.defaultMessage(status.code) }
    switch status.code {
    case .internalError, .dataLoss:
      logger.error("call failed", metadata: metadata(status, method: method))
    case .unavailable, .resourceExhausted, .aborted:
      sheddingLog.log(logger, .warning, "call failed", metadata: metadata(status, method: method))
    default:
      break
    }
    return status
  }

  /// The status code alone, for the audit log, without logging anything.
  static func code(of error: any Error) -> RPCError.Code {
    let code: RPCError.Code =
      switch error {
      case let error as RPCError: error.code
      case let error as any RPCErrorConvertible: error.rpcErrorCode
      case is CancellationError: .cancelled
      default: .internalError
      }
    return code == .unknown ? .internalError : code
  }

  private func unexpected(_ error: any Error, method: String, message: String = "") -> RPCError {
    let reference = String(UInt32.random(in: 0...UInt32.max), radix: 16)
    logger.error(
      "call failed with an unexpected error",
      metadata: [
        "rpc.method": "\(method)", "error.reference": "\(reference)", "error.message": "\(message)",
        "error.detail": "\(String(reflecting: error))",
      ])
    return RPCError(
      code: .internalError, message: "internal error (reference \(reference)); the server's log has the detail", cause: error)
  }

  private func metadata(_ status: RPCError, method: String) -> Logger.Metadata {
    var metadata: Logger.Metadata = ["rpc.method": "\(method)", "rpc.code": "\(status.code.grpcName)", "error.message": "\(status.message)"]
    if let store = status.cause as? StoreError, let cause = store.cause { metadata["error.detail"] = "\(String(reflecting: cause))" }
    return metadata
  }

  /// Words for a status that came without any (a library's, or a transport's).
  static func defaultMessage(_ code: RPCError.Code) -> String {
    switch code {
    case .cancelled: "the call was cancelled"
    case .deadlineExceeded: "the call's deadline passed before the server finished"
    case .unavailable: "the server is unavailable; try again"
    case .resourceExhausted: "the server is out of resources; try again later"
    case .internalError, .unknown, .dataLoss: "internal error; the server's log has the detail"
    default: "the call failed (\(code.grpcName))"
    }
  }
}

internal import GRPCCore
internal import PEMISProto
internal import PEMISWire
internal import SwiftProtobuf
internal import Synchronization

/// What Health reports: whether the server is serving or draining, and since when.
public final class ServerStatus: Sendable {
  /// The server's version, reported by Health and `pemis-server --version`.
  public static let version = "0.1.0"

  private let draining = Atomic<Bool>(false)
  private let started = ContinuousClock.now
  /// Fully qualified names of the services this server serves.
  let services: Set<String>

  init(services: Set<String>) {
    self.services = services
  }

  /// Marks the server as shutting down; Health reports DRAINING from now on.
  func beginDraining() { draining.store(true, ordering: .relaxed) }
  var isDraining: Bool { draining.load(ordering: .relaxed) }
  var uptime: Duration { ContinuousClock.now - started }
}

/// `pemis.v1.Health`: liveness and readiness, open to every caller, no personal data.
struct HealthService: Pemis_V1_Health.SimpleServiceProtocol {
  let status: ServerStatus

  func check(
    request: Pemis_V1_HealthCheckRequest, context: ServerContext
  ) async throws -> Pemis_V1_HealthCheckResponse {
    if !request.service.isEmpty && !status.services.contains(request.service) {
      throw RPCError(
        code: .notFound,
        message: "service: '\(request.service)' is not served here (served: \(status.services.sorted().joined(separator: ", ")))")
    }
    return .with {
      $0.status = status.isDraining ? .draining : .serving
      $0.version = ServerStatus.version
      $0.uptimeSeconds = UInt64(max(0, status.uptime.components.seconds))
      $0.protocolVersion = context.pemisWire?.protocolVersion ?? 0
    }
  }
}

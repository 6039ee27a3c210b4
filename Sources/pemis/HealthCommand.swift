import ArgumentParser
import Foundation
import GRPCCore
import PEMISClient
import PEMISProto
import SwiftProtobuf

struct HealthCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "health",
    abstract: "Check that a server is up and serving.",
    discussion: "Exits 0 when the server answers SERVING, 1 otherwise.")

  @OptionGroup var connection: ConnectionOptions

  @Option(help: "Ask about one service (e.g. pemis.v1.Echo) instead of the whole server.")
  var service: String = ""

  func run() async throws {
    let address = try connection.address()
    try await runReportingFailure {
      let started = ContinuousClock.now
      let response = try await connection.withClient(address) { client in
        try await Pemis_V1_Health.Client(wrapping: client).check(
          .with { $0.service = service }, options: connection.callOptions)
      }
      let elapsed = ContinuousClock.now - started
      let milliseconds = Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000
      let status = Self.name(response.status)
      if connection.json {
        try printJSON([
          "server": address.description, "status": status, "version": response.version,
          "uptime_seconds": response.uptimeSeconds, "protocol_version": response.protocolVersion,
          "round_trip_ms": (milliseconds * 100).rounded() / 100,
        ])
      } else {
        print(
          "\(address)  \(status)  version \(response.version)  protocol \(response.protocolVersion)  "
            + "uptime \(response.uptimeSeconds)s  (\(String(format: "%.1f", milliseconds)) ms)")
      }
      if response.status != .serving { throw ExitCode(1) }
    }
  }

  static func name(_ status: Pemis_V1_HealthCheckResponse.ServingStatus) -> String {
    switch status {
    case .serving: "SERVING"
    case .notServing: "NOT_SERVING"
    case .draining: "DRAINING"
    case .unknown, .UNRECOGNIZED: "UNKNOWN"
    }
  }
}

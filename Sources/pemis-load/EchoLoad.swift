import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Histogram
import PEMISClient
import PEMISProto
import PEMISWire
import SwiftProtobuf

/// Unary Echo calls as fast as the callers can make them: calls per second and latency for each
/// combination of connection count and caller count, each run for a fixed time after a warm-up —
/// over PEMIS wire, over standard gRPC on HTTP/2 (the server's `http2Port`), or both in turn
/// against the same server, with the ratio.
struct EchoLoad: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "echo",
    abstract: "Measure unary Echo calls/s and latency over PEMIS wire and/or gRPC over HTTP/2.",
    discussion: """
      tools/bench-echo.sh builds in release mode, starts a server process and runs this over PEMIS \
      wire; tools/bench-transports.sh does the same with both transports against one server. With \
      --transport wire,http2 each combination runs over PEMIS wire and then over HTTP/2, and a \
      table of the two with their ratio follows.
      """)

  /// Which client transport the calls go over.
  enum Transport: String, Codable, CaseIterable {
    case wire
    case http2
  }

  @Option(help: "PEMIS wire server as HOST:PORT.") var server: String = "127.0.0.1:7400"
  @Option(name: .customLong("http2-server"), help: "The server's gRPC over HTTP/2 listener as HOST:PORT (for --transport http2).")
  var http2Server: String?
  @Option(help: "Comma-separated transports: wire, http2.") var transport: String = "wire"
  @Option(help: "Comma-separated caller counts.") var callers: String = "1,16,64"
  @Option(help: "Comma-separated connection counts.") var connections: String = "1,4"
  @Option(help: "Seconds measured per combination.") var duration: Double = 10
  @Option(help: "Seconds of unmeasured calls before each measurement.") var warmup: Double = 2
  @Option(help: "Bytes of payload in each request (echoed back).") var payload: Int = 100
  @Option(help: "Write the results as JSON to this file.") var json: String?
  @Option(
    name: .customLong("ca-file"),
    help: "Speak TLS over PEMIS wire, verifying the server against this CA (PEM). Default: plaintext.")
  var caFile: String?

  struct Row: Codable {
    var transport: Transport
    var connections: Int
    var callers: Int
    var calls: Int
    var errors: Int
    var seconds: Double
    var callsPerSecond: Double
    var p50Ms: Double
    var p90Ms: Double
    var p99Ms: Double
    var maxMs: Double
  }

  /// Parses and checks an address: load runs target loopback only.
  static func loopback(_ text: String, _ option: String) throws -> ServerAddress {
    let address: ServerAddress
    do { address = try ServerAddress(parsing: text) } catch { throw ValidationError("\(option): \(error.description)") }
    guard address.host == "localhost" || address.host.hasPrefix("127.") || address.host == "::1" else {
      throw ValidationError("\(option): load runs target loopback only (127.0.0.0/8, ::1, localhost); got \(address.host)")
    }
    return address
  }

  func run() async throws {
    var transports: [Transport] = []
    for name in transport.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
      guard let value = Transport(rawValue: name) else {
        throw ValidationError("--transport must be a comma-separated list of wire and http2, got '\(transport)'")
      }
      if !transports.contains(value) { transports.append(value) }
    }
    guard !transports.isEmpty else { throw ValidationError("--transport must name wire, http2 or both") }
    let address = try Self.loopback(server, "--server")
    var http2Address: ServerAddress?
    if transports.contains(.http2) {
      guard let http2Server else {
        throw ValidationError("--transport http2 needs --http2-server HOST:PORT (pemis-server --http2-port)")
      }
      http2Address = try Self.loopback(http2Server, "--http2-server")
    }
    let callerCounts = try Self.counts(callers, "callers")
    let connectionCounts = try Self.counts(connections, "connections")
    guard duration > 0, warmup >= 0, (0...1_000_000).contains(payload) else {
      throw ValidationError("--duration must be above 0, --warmup not negative, --payload 0...1000000")
    }
    let request = Pemis_V1_EchoRequest.with {
      $0.text = "pemis-load"
      $0.payload = Data(repeating: 0x5A, count: payload)
    }
    let wireTLS = try (caFile.map { ClientSecurity.tls(caFile: $0) } ?? .plaintext).wireTLS(for: address)
    let wireConfig: PEMISWireClientTransport.Config = {
      var config = PEMISWireClientTransport.Config.defaults
      config.tls = wireTLS
      return config
    }()
    let targets = transports.map { $0 == .wire ? "wire\(wireTLS == nil ? "" : "+TLS") \(address)" : "http2 \(http2Address!)" }
    print(
      "pemis-load echo → \(targets.joined(separator: ", "))  payload \(payload) B  \(duration)s per run after \(warmup)s warm-up")
    print("transport  conns  callers      calls/s     p50 ms     p90 ms     p99 ms     max ms   errors")
    var rows: [Row] = []
    for connectionCount in connectionCounts {
      for callerCount in callerCounts {
        // Both transports at each point in turn, so a drift of the machine's load hits both alike.
        for transport in transports {
          let row: Row
          switch transport {
          case .wire:
            row = try await measure(transport, connectionCount, callerCount, request) {
              PEMISWireClientTransport(host: address.host, port: address.port, config: wireConfig)
            }
          case .http2:
            let target = http2Address!
            row = try await measure(transport, connectionCount, callerCount, request) {
              try HTTP2ClientTransport.Posix(
                target: target.host.contains(":")
                  ? .ipv6(address: target.host, port: target.port) : .ipv4(address: target.host, port: target.port),
                transportSecurity: .plaintext)
            }
          }
          rows.append(row)
          print(
            row.transport.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)
              + String(
                format: "  %5d  %7d  %11.0f  %9.3f  %9.3f  %9.3f  %9.3f  %7d", row.connections, row.callers,
                row.callsPerSecond, row.p50Ms, row.p90Ms, row.p99Ms, row.maxMs, row.errors))
        }
      }
    }
    if transports.count == 2 {
      print("\nPEMIS wire against gRPC over HTTP/2, same server:")
      print("conns  callers   wire calls/s  http2 calls/s   ratio   wire p99 ms  http2 p99 ms")
      for wire in rows where wire.transport == .wire {
        guard
          let http2 = rows.first(where: {
            $0.transport == .http2 && $0.connections == wire.connections && $0.callers == wire.callers
          })
        else { continue }
        print(
          String(
            format: "%5d  %7d  %13.0f  %13.0f  %5.2fx  %12.3f  %12.3f", wire.connections, wire.callers,
            wire.callsPerSecond, http2.callsPerSecond, wire.callsPerSecond / max(http2.callsPerSecond, 1),
            wire.p99Ms, http2.p99Ms))
      }
    }
    if let json {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
      try encoder.encode(rows).write(to: URL(fileURLWithPath: json))
      print("results written to \(json)")
    }
  }

  static func counts(_ text: String, _ name: String) throws -> [Int] {
    let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) >= 1 && ($0 ?? 0) <= 10_000 }) else {
      throw ValidationError("--\(name) must be comma-separated whole numbers from 1 to 10000, got '\(text)'")
    }
    return values.map { $0! }
  }

  /// One run: `connectionCount` clients (one connection each, over transports from `makeTransport`),
  /// `callerCount` callers spread over them.
  private func measure<T: ClientTransport>(
    _ transport: Transport, _ connectionCount: Int, _ callerCount: Int, _ request: Pemis_V1_EchoRequest,
    makeTransport: () throws -> T
  ) async throws -> Row {
    let clients = try (0..<connectionCount).map { _ in GRPCClient(transport: try makeTransport()) }
    let clock = ContinuousClock()
    let start = clock.now
    let measureFrom = start + .milliseconds(Int64(warmup * 1000))
    let measureUntil = measureFrom + .milliseconds(Int64(duration * 1000))

    let (histogram, errors) = try await withThrowingTaskGroup(of: (Histogram<UInt64>, Int)?.self) { group in
      for client in clients { group.addTask { try await client.runConnections(); return nil } }
      let callers = (0..<callerCount).map { Pemis_V1_Echo.Client(wrapping: clients[$0 % connectionCount]) }
      let results = try await withThrowingTaskGroup(of: (Histogram<UInt64>, Int).self) { callersGroup in
        for echo in callers {
          callersGroup.addTask {
            var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
            var errors = 0
            while true {
              let before = clock.now
              if before >= measureUntil { break }
              do {
                _ = try await echo.get(request)
              } catch {
                if before >= measureFrom { errors += 1 }
                continue
              }
              if before >= measureFrom {
                let micros = (clock.now - before).components
                _ = histogram.record(UInt64(max(1, micros.seconds * 1_000_000 + micros.attoseconds / 1_000_000_000_000)))
              }
            }
            return (histogram, errors)
          }
        }
        var merged = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var errors = 0
        for try await (histogram, callerErrors) in callersGroup {
          merged.add(histogram)
          errors += callerErrors
        }
        return (merged, errors)
      }
      for client in clients { client.beginGracefulShutdown() }
      try await group.waitForAll()
      return results
    }
    let calls = Int(histogram.totalCount)
    func ms(_ micros: UInt64) -> Double { Double(micros) / 1000 }
    return Row(
      transport: transport, connections: connectionCount, callers: callerCount, calls: calls, errors: errors, seconds: duration,
      callsPerSecond: Double(calls) / duration,
      p50Ms: ms(histogram.valueAtPercentile(50)), p90Ms: ms(histogram.valueAtPercentile(90)),
      p99Ms: ms(histogram.valueAtPercentile(99)), maxMs: ms(histogram.max))
  }
}

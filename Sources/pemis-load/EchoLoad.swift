import ArgumentParser
import Foundation
import GRPCCore
import Histogram
import PEMISClient
import PEMISProto
import PEMISWire
import SwiftProtobuf

/// Unary Echo calls as fast as the callers can make them: calls per second and latency for each
/// combination of connection count and caller count, each run for a fixed time after a warm-up.
struct EchoLoad: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "echo",
    abstract: "Measure unary Echo calls/s and latency over PEMIS wire.",
    discussion: "tools/bench-echo.sh builds in release mode, starts a server process and runs this.")

  @Option(help: "Server as HOST:PORT.") var server: String = "127.0.0.1:7400"
  @Option(help: "Comma-separated caller counts.") var callers: String = "1,16,64"
  @Option(help: "Comma-separated connection counts.") var connections: String = "1,4"
  @Option(help: "Seconds measured per combination.") var duration: Double = 10
  @Option(help: "Seconds of unmeasured calls before each measurement.") var warmup: Double = 2
  @Option(help: "Bytes of payload in each request (echoed back).") var payload: Int = 100
  @Option(help: "Write the results as JSON to this file.") var json: String?

  struct Row: Codable {
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

  func run() async throws {
    let address: ServerAddress
    do { address = try ServerAddress(parsing: server) } catch { throw ValidationError(error.description) }
    guard address.host == "localhost" || address.host.hasPrefix("127.") || address.host == "::1" else {
      throw ValidationError("load runs target loopback only (127.0.0.0/8, ::1, localhost); got \(address.host)")
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
    print("pemis-load echo → \(address)  payload \(payload) B  \(duration)s per run after \(warmup)s warm-up")
    print("conns  callers      calls/s     p50 ms     p90 ms     p99 ms     max ms   errors")
    var rows: [Row] = []
    for connectionCount in connectionCounts {
      for callerCount in callerCounts {
        let row = try await measure(address, connectionCount, callerCount, request)
        rows.append(row)
        print(
          String(
            format: "%5d  %7d  %11.0f  %9.3f  %9.3f  %9.3f  %9.3f  %7d", row.connections, row.callers,
            row.callsPerSecond, row.p50Ms, row.p90Ms, row.p99Ms, row.maxMs, row.errors))
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

  private func measure(
    _ address: ServerAddress, _ connectionCount: Int, _ callerCount: Int, _ request: Pemis_V1_EchoRequest
  ) async throws -> Row {
    let clients = (0..<connectionCount).map { _ in
      GRPCClient(transport: PEMISWireClientTransport(host: address.host, port: address.port))
    }
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
      connections: connectionCount, callers: callerCount, calls: calls, errors: errors, seconds: duration,
      callsPerSecond: Double(calls) / duration,
      p50Ms: ms(histogram.valueAtPercentile(50)), p90Ms: ms(histogram.valueAtPercentile(90)),
      p99Ms: ms(histogram.valueAtPercentile(99)), maxMs: ms(histogram.max))
  }
}

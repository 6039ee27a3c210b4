import ArgumentParser
import Foundation
import GRPCCore
import Histogram
import PEMISClient
import PEMISDomain
import PEMISProto
import PEMISStore
import PEMISWire
import SwiftProtobuf

/// `pemis-load login-flood`: what guessing achieves against the lockout, and what a login flood
/// costs a real user (docs/PERFORMANCE.md, "Logins under attack"). Against a server started on a
/// `seed-district` data directory (tools/bench-login-flood.sh).
struct LoginFlood: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "login-flood",
    abstract: "100 guesses at once at one account (how many were checked), then a real user's login latency during a flood.")

  @Option(help: "Server as HOST:PORT.") var server: String = "127.0.0.1:7400"
  @Option(name: .customLong("data-dir"), help: "The server's data directory (read for the number of passwords checked).")
  var dataDirectory: String
  @Option(help: "Password of district.seed (the real user) and the seeded principals.") var password: String = "Seeded-principal-2026"
  @Option(help: "Seeded kindergartens (principals p1100000001…), the flood's targets.") var kindergartens: Int = 50
  @Option(help: "Guesses sent at once at one account.") var guesses: Int = 100
  @Option(help: "Flooding callers, each on its own connection.") var flooders: Int = 64
  @Option(help: "Seconds of flood.") var seconds: Double = 20
  @Option(help: "Pause between the real user's logins, in milliseconds.") var interval: Int = 250

  func run() async throws {
    let address = try ServerAddress(parsing: server)
    guard address.host.hasPrefix("127.") || address.host == "localhost" || address.host == "::1" else {
      throw ValidationError("load runs target loopback only")
    }
    let registry = try Registry(directory: dataDirectory, keys: try DataKeys.forDataDirectory(dataDirectory))

    // 1. Guesses at once at an account never used from here, the right password last.
    let target = "p1100000001"
    let before = try await registry.checkedPasswords(username: target)
    let codes = try await withPEMISClient(address) { client in
      let session = Pemis_V1_Session.Client(wrapping: client)
      return await withTaskGroup(of: String.self) { group in
        for n in 0..<guesses {
          let guess = n == guesses - 1 ? password : "Wrong-guess-\(n)"
          group.addTask { await Self.login(session, target, guess) }
        }
        var codes: [String: Int] = [:]
        for await code in group { codes[code, default: 0] += 1 }
        return codes
      }
    }
    let checked = try await registry.checkedPasswords(username: target) - before
    print("\(guesses) guesses at once at \(target): \(checked) passwords checked (lockout limit \(AccountRules.maxFailedLogins))")
    print("  answers: " + codes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))

    // 2. A real user's login alone, then during a flood of wrong passwords at many accounts.
    let user = "district.seed"
    // The first login makes this address familiar to the account, as the user's office is.
    _ = try await withPEMISClient(address) { try await Self.timedLogin(Pemis_V1_Session.Client(wrapping: $0), user, password) }
    let alone = try await measure(address, user, for: min(seconds, 10))
    let flooded = try await withThrowingTaskGroup(of: Int.self) { group in
      let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
      for f in 0..<flooders {
        group.addTask {
          try await withPEMISClient(address) { client in
            let session = Pemis_V1_Session.Client(wrapping: client)
            var sent = 0
            while ContinuousClock.now < deadline {
              let name = sent % 3 == 0 ? "nobody\(f).\(sent)" : "p11\(String(format: "%08d", 1 + (f * 7 + sent) % kindergartens))"
              _ = await Self.login(session, name, "Flood-guess-\(sent)")
              sent += 1
            }
            return sent
          }
        }
      }
      let latencies = try await measure(address, user, for: seconds * 0.9)
      var sent = 0
      for try await n in group { sent += n }
      return (latencies, sent)
    }
    func row(_ label: String, _ h: Histogram<UInt64>) -> String {
      func ms(_ v: UInt64) -> String { String(format: "%.1f", Double(v) / 1000).padding(toLength: 9, withPad: " ", startingAt: 0) }
      return label.padding(toLength: 14, withPad: " ", startingAt: 0)
        + [h.valueAtPercentile(50), h.valueAtPercentile(99), h.max].map(ms).joined() + "  (\(h.totalCount) logins)"
    }
    print("real user's login (\(user), from an address it used before), ms")
    print("              p50      p99      max")
    print(row("alone", alone))
    print(row("during flood", flooded.0))
    print("flood: \(flooders) callers sent \(flooded.1) wrong logins in \(seconds) s")
  }

  /// The real user's logins one after another, `interval` apart, for `duration` seconds, on one
  /// connection (so the figure is the login, not the connection's handshake).
  func measure(_ address: ServerAddress, _ user: String, for duration: Double) async throws -> Histogram<UInt64> {
    try await withPEMISClient(address) { client in
      let session = Pemis_V1_Session.Client(wrapping: client)
      var histogram = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
      let end = ContinuousClock.now + .milliseconds(Int(duration * 1000))
      while ContinuousClock.now < end {
        _ = histogram.record(try await Self.timedLogin(session, user, password))
        try await Task.sleep(for: .milliseconds(interval))
      }
      return histogram
    }
  }

  /// One login, in microseconds; fails the run if refused.
  static func timedLogin(
    _ session: Pemis_V1_Session.Client<PEMISWireClientTransport>, _ user: String, _ password: String
  ) async throws -> UInt64 {
    let start = ContinuousClock.now
    _ = try await session.login(.with {
      $0.username = user
      $0.password = password
    })
    let elapsed = (ContinuousClock.now - start).components
    return UInt64(elapsed.seconds * 1_000_000 + elapsed.attoseconds / 1_000_000_000_000)
  }

  /// A login's status name (OK or the gRPC code).
  static func login(_ session: Pemis_V1_Session.Client<PEMISWireClientTransport>, _ user: String, _ password: String) async -> String {
    do {
      _ = try await session.login(.with {
        $0.username = user
        $0.password = password
      })
      return "OK"
    } catch let error as RPCError {
      return "\(error.code)"
    } catch {
      return "error"
    }
  }
}

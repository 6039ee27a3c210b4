import ArgumentParser
import Foundation
import GRPCCore
import Histogram
import NIOCore
import NIOPosix
import PEMISClient
import PEMISProto
import PEMISWire
import SwiftProtobuf
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// The door under siege: a well-behaved client's latency alone, then while thousands of idle
/// connections, clients that never read their answers and a login flood run at once; and the
/// server's resident memory meanwhile (docs/PERFORMANCE.md, "The door").
struct DoorLoad: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "door",
    abstract: "Measure a well-behaved client's latency while idle connections, never-reading clients and a login flood run.",
    discussion: """
      Start the server first (diagnostics on: the never-reading clients call Echo/Get). Idle \
      connections come from 127.0.0.2, 127.0.0.3, … (--per-address each), so the server's \
      per-address limit applies to them as it would to many kindergartens. Pass --server-pid to \
      sample the server's RSS from /proc.
      """)

  @Option(help: "PEMIS wire server as HOST:PORT (loopback).") var server: String = "127.0.0.1:7400"
  @Option(name: .customLong("server-pid"), help: "The server's process id, to sample its RSS.") var serverPID: Int?
  @Option(help: "Idle connections (HELLO, then nothing).") var idle: Int = 10_000
  @Option(name: .customLong("per-address"), help: "Idle connections per source address.") var perAddress: Int = 500
  @Option(name: .customLong("never-reading"), help: "Clients that send calls and never read the answers.")
  var neverReading: Int = 100
  @Option(name: .customLong("never-reading-calls"), help: "Echo/Get calls each never-reading client sends.")
  var neverReadingCalls: Int = 200
  @Option(name: .customLong("never-reading-payload"), help: "Bytes of payload in each of those calls (echoed back).")
  var neverReadingPayload: Int = 64 * 1024
  @Option(name: .customLong("login-flood"), help: "Concurrent callers guessing passwords with Session/Login.")
  var loginFlood: Int = 16
  @Option(help: "Username the login flood guesses at.") var username: String = "door-flood"
  @Option(help: "Seconds measured alone and again under load.") var duration: Double = 10

  func run() async throws {
    let address = try EchoLoad.loopback(server, "--server")
    guard idle >= 0, neverReading >= 0, loginFlood >= 0, perAddress >= 1, duration > 0 else {
      throw ValidationError("--idle, --never-reading, --login-flood not negative; --per-address and --duration above 0")
    }
    let descriptors = Self.raiseDescriptorLimit()
    print("pemis-load door → \(address)  idle \(idle)  never-reading \(neverReading)  login flood \(loginFlood)  \(duration)s per phase  (RLIMIT_NOFILE \(descriptors))")
    let rss = RSSSampler(pid: serverPID)
    rss.sample()

    let client = GRPCClient(transport: PEMISWireClientTransport(host: address.host, port: address.port))
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await client.runConnections() }
      let health = Pemis_V1_Health.Client(wrapping: client)
      _ = try await health.check(.init())

      let alone = try await Self.latency(health, seconds: duration, rss: rss)
      Self.report("alone", alone)
      let rssAlone = rss.current

      let loops = MultiThreadedEventLoopGroup.singleton
      let opened = await Self.openIdle(count: idle, perAddress: perAddress, host: address.host, port: address.port, group: loops)
      print("idle connections: \(opened.channels.count) open, \(opened.failed) failed to connect or were refused")
      let stalled = await Self.openNeverReading(
        count: neverReading, calls: neverReadingCalls, payload: neverReadingPayload,
        host: address.host, port: address.port, group: loops)
      print("never-reading clients: \(stalled.count) connected, \(neverReadingCalls) calls of \(neverReadingPayload) B each")

      let counter = FloodCounter()
      let flood = GRPCClient(transport: PEMISWireClientTransport(host: address.host, port: address.port))
      group.addTask { try await flood.runConnections() }
      let session = Pemis_V1_Session.Client(wrapping: flood)
      let username = self.username
      let loginFlood = self.loginFlood
      group.addTask {
        await withTaskGroup(of: Void.self) { callers in
          for caller in 0..<loginFlood {
            callers.addTask {
              var guess = 0
              while !counter.stop.load(ordering: .relaxed) {
                guess += 1
                _ = try? await session.login(.with {
                  $0.username = username
                  $0.password = "wrong-\(caller)-\(guess)"
                })
                counter.attempts.add(1, ordering: .relaxed)
              }
            }
          }
        }
      }
      let floodStart = ContinuousClock.now
      let loaded = try await Self.latency(health, seconds: duration, rss: rss)
      counter.stop.store(true, ordering: .relaxed)
      let floodSeconds = (ContinuousClock.now - floodStart).seconds
      Self.report("under load", loaded)
      print(String(format: "login flood: %d attempts answered, %.0f/s", counter.attempts.load(ordering: .relaxed), Double(counter.attempts.load(ordering: .relaxed)) / floodSeconds))
      let stillOpen = stalled.filter { $0.isActive }.count
      print("never-reading clients still connected (as this side sees it): \(stillOpen) of \(stalled.count)")
      if serverPID != nil {
        print(String(
          format: "server RSS: %.1f MB before, %.1f MB alone, %.1f MB max under load, %.1f MB at the end",
          rss.first / 1e6, rssAlone / 1e6, rss.max / 1e6, rss.current / 1e6))
      }
      print(String(format: "p99 under load / alone: %.2fx", loaded.p99Ms / max(alone.p99Ms, 0.001)))

      for channel in opened.channels + stalled { channel.close(promise: nil) }
      client.beginGracefulShutdown()
      flood.beginGracefulShutdown()
      try await group.waitForAll()
    }
  }

  struct Latency {
    var calls: Int
    var errors: Int
    var p50Ms: Double
    var p99Ms: Double
    var maxMs: Double
  }

  static func report(_ phase: String, _ latency: Latency) {
    print(
      phase.padding(toLength: 11, withPad: " ", startingAt: 0)
        + String(
          format: " Health/Check: %6d calls  p50 %7.3f ms  p99 %7.3f ms  max %8.3f ms  errors %d",
          latency.calls, latency.p50Ms, latency.p99Ms, latency.maxMs, latency.errors))
  }

  /// One caller, one call after another, for `seconds`; RSS sampled every 250 ms meanwhile.
  static func latency(
    _ health: Pemis_V1_Health.Client<PEMISWireClientTransport>, seconds: Double, rss: RSSSampler
  ) async throws -> Latency {
    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    var errors = 0
    let clock = ContinuousClock()
    let until = clock.now + .milliseconds(Int64(seconds * 1000))
    var nextSample = clock.now
    while clock.now < until {
      if clock.now >= nextSample {
        rss.sample()
        nextSample = clock.now + .milliseconds(250)
      }
      let before = clock.now
      do {
        _ = try await health.check(.init())
        _ = histogram.record(UInt64(max(1, (clock.now - before).microseconds)))
      } catch {
        errors += 1
      }
    }
    func ms(_ micros: UInt64) -> Double { Double(micros) / 1000 }
    return Latency(
      calls: Int(histogram.totalCount), errors: errors, p50Ms: ms(histogram.valueAtPercentile(50)),
      p99Ms: ms(histogram.valueAtPercentile(99)), maxMs: ms(histogram.max))
  }

  // MARK: Raw connections

  /// Drops whatever the server sends.
  final class Discard: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
  }

  /// HELLO, protobuf-encoded by hand (pemis.wire.v1.Hello: versions 1–1, 4 MiB frames, window 64).
  static let hello: [UInt8] = {
    var fields: [UInt8] = [0x08, 0x01, 0x10, 0x01, 0x18]
    fields += varint(4 * 1024 * 1024)
    fields += [0x20, 64]
    var buffer = ByteBuffer()
    Frame.encode(kind: .hello, streamID: 0, bytes: fields, into: &buffer)
    return Array(buffer.readableBytesView)
  }()

  static func varint(_ value: UInt64) -> [UInt8] {
    var value = value
    var bytes: [UInt8] = []
    repeat {
      var byte = UInt8(value & 0x7F)
      value >>= 7
      if value != 0 { byte |= 0x80 }
      bytes.append(byte)
    } while value != 0
    return bytes
  }

  /// A TCP connection from `source` that has sent HELLO.
  static func connect(from source: String, host: String, port: Int, group: any EventLoopGroup) async throws -> any Channel {
    let channel = try await ClientBootstrap(group: group)
      .bind(to: try SocketAddress(ipAddress: source, port: 0))
      .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Discard()) }
      }
      .connect(host: host, port: port).get()
    try await channel.writeAndFlush(ByteBuffer(bytes: hello))
    return channel
  }

  static func openIdle(
    count: Int, perAddress: Int, host: String, port: Int, group: any EventLoopGroup
  ) async -> (channels: [any Channel], failed: Int) {
    await withTaskGroup(of: (any Channel)?.self) { tasks in
      var channels: [any Channel] = []
      var failed = 0
      // Source address of the index-th connection: perAddress connections each.
      func source(_ index: Int) -> String {
        let block = index / perAddress
        return "127.0.\(2 + block / 250).\(2 + block % 250)"
      }
      // 256 connects in flight at once, so the listener's backlog is not the bottleneck.
      var started = 0
      while started < min(count, 256) {
        let from = source(started)
        tasks.addTask { try? await connect(from: from, host: host, port: port, group: group) }
        started += 1
      }
      while let channel = await tasks.next() {
        if let channel { channels.append(channel) } else { failed += 1 }
        if started < count {
          let from = source(started)
          tasks.addTask { try? await connect(from: from, host: host, port: port, group: group) }
          started += 1
        }
      }
      return (channels, failed)
    }
  }

  /// Clients that send `calls` Echo/Get calls and never read a byte of the answers.
  static func openNeverReading(
    count: Int, calls: Int, payload: Int, host: String, port: Int, group: any EventLoopGroup
  ) async -> [any Channel] {
    let request = (try? Pemis_V1_EchoRequest.with { $0.payload = Data(repeating: 0x42, count: payload) }.serializedBytes()) ?? [UInt8]()
    let method = Array("/pemis.v1.Echo/Get".utf8)
    let callStart: [UInt8] = [0x0A] + varint(UInt64(method.count)) + method
    var channels: [any Channel] = []
    for index in 0..<count {
      guard let channel = try? await connect(from: "127.1.\(index / 250).\(2 + index % 250)", host: host, port: port, group: group)
      else { continue }
      try? await channel.setOption(ChannelOptions.autoRead, value: false).get()
      var buffer = ByteBuffer()
      for call in 0..<calls {
        let id = UInt32(2 * call + 1)
        Frame.encode(kind: .callStart, streamID: id, bytes: callStart, into: &buffer)
        Frame.encode(kind: .message, streamID: id, bytes: request, into: &buffer)
        Frame.encode(kind: .closeSend, streamID: id, bytes: [UInt8](), into: &buffer)
      }
      // Not awaited: the server stops reading once its answers back up.
      channel.writeAndFlush(buffer, promise: nil)
      channels.append(channel)
    }
    return channels
  }

  /// Raises this process's soft descriptor limit to the hard one; returns the soft limit.
  static func raiseDescriptorLimit() -> Int {
    #if os(Linux)
      var limit = rlimit()
      guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return -1 }
      limit.rlim_cur = limit.rlim_max
      _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
      _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
      return Int(clamping: limit.rlim_cur)
    #else
      return -1
    #endif
  }
}

/// Tells the login flood to stop, and counts its answered attempts.
final class FloodCounter: Sendable {
  let stop = Atomic<Bool>(false)
  let attempts = Atomic<Int>(0)
}

/// Samples a process's resident set size (VmRSS in /proc/PID/status).
final class RSSSampler: Sendable {
  private let pid: Int?
  private let state = Mutex<(first: Double, current: Double, max: Double)>((0, 0, 0))

  init(pid: Int?) { self.pid = pid }

  var first: Double { state.withLock { $0.first } }
  var current: Double { state.withLock { $0.current } }
  var max: Double { state.withLock { $0.max } }

  func sample() {
    guard let pid, let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
      let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
      let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "")
    else { return }
    let bytes = kilobytes * 1024
    state.withLock { state in
      if state.first == 0 { state.first = bytes }
      state.current = bytes
      state.max = Swift.max(state.max, bytes)
    }
  }
}

extension Duration {
  fileprivate var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
  fileprivate var microseconds: Int64 { components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000 }
}

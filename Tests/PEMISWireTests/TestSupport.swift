import GRPCCore
import NIOCore
import NIOPosix
import PEMISProto
import SwiftProtobuf
import Synchronization
import Testing

@testable import PEMISWire

/// What the probe service saw, for tests to assert on.
final class ProbeLog: Sendable {
  private let state = Mutex<(events: [String], peers: Set<String>, active: Int, maxActive: Int)>(([], [], 0, 0))

  func record(_ event: String) { state.withLock { $0.events.append(event) } }
  var events: [String] { state.withLock { $0.events } }
  var peers: Set<String> { state.withLock { $0.peers } }
  var maxActive: Int { state.withLock { $0.maxActive } }

  func enter(peer: String) {
    state.withLock {
      $0.peers.insert(peer)
      $0.active += 1
      $0.maxActive = max($0.maxActive, $0.active)
    }
  }
  func leave() { state.withLock { $0.active -= 1 } }

  /// Waits up to `seconds` for an event.
  func waitFor(_ event: String, seconds: Double = 30) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    while ContinuousClock.now < deadline {
      if events.contains(event) { return true }
      try? await Task.sleep(for: .milliseconds(10))
    }
    return false
  }
}

/// An Echo implementation that records what the transport delivers: metadata, deadlines,
/// cancellation, concurrency. Metadata "x-probe" comes back in the response metadata and trailers.
struct ProbeService: Pemis_V1_Echo.ServiceProtocol {
  let log: ProbeLog

  private func wait(_ milliseconds: UInt32, _ context: ServerContext) async throws {
    guard milliseconds > 0 else { return }
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await Task.sleep(for: .milliseconds(Int(milliseconds))) }
      group.addTask {
        try await context.cancellation.cancelled
        throw RPCError(code: .cancelled, message: "cancelled")
      }
      defer { group.cancelAll() }
      do {
        try await group.next()
      } catch {
        log.record("cancelled:\(context.descriptor.method)")
        throw error
      }
    }
  }

  private func metadata(_ request: Metadata) -> Metadata {
    var out: Metadata = [:]
    for value in request[stringValues: "x-probe"] { out.addString(value, forKey: "x-probe") }
    for value in request[binaryValues: "x-probe-bin"] { out.addBinary(value, forKey: "x-probe-bin") }
    return out
  }

  func get(request: ServerRequest<Pemis_V1_EchoRequest>, context: ServerContext) async throws
    -> ServerResponse<Pemis_V1_EchoResponse>
  {
    log.enter(peer: context.remotePeer)
    defer { log.leave() }
    log.record("started:Get:\(request.message.text)")
    try await wait(request.message.delayMs, context)
    var response = Pemis_V1_EchoResponse()
    response.text = request.message.text
    response.payload = request.message.payload
    if let deadline = context.pemisWire?.deadline {
      response.remainingDeadlineMs = ContinuousClock.now.duration(to: deadline).components.seconds * 1000
        + ContinuousClock.now.duration(to: deadline).components.attoseconds / 1_000_000_000_000_000
    }
    return ServerResponse(message: response, metadata: metadata(request.metadata), trailingMetadata: metadata(request.metadata))
  }

  func expand(request: ServerRequest<Pemis_V1_EchoRequest>, context: ServerContext) async throws
    -> StreamingServerResponse<Pemis_V1_EchoResponse>
  {
    let words = request.message.repeat > 0
      ? Array(repeating: request.message.text, count: Int(request.message.repeat))
      : request.message.text.split(separator: " ").map(String.init)
    let delay = request.message.delayMs
    return StreamingServerResponse(metadata: metadata(request.metadata)) { writer in
      do {
        for (index, word) in words.enumerated() {
          try await wait(delay, context)
          try await writer.write(.with { $0.text = word; $0.index = UInt32(index) })
        }
      } catch {
        // The cancellation may land while the handler is writing rather than waiting.
        if context.cancellation.isCancelled { log.record("cancelled:Expand") }
        throw error
      }
      return [:]
    }
  }

  func collect(request: StreamingServerRequest<Pemis_V1_EchoRequest>, context: ServerContext) async throws
    -> ServerResponse<Pemis_V1_EchoResponse>
  {
    var texts: [String] = []
    for try await message in request.messages {
      try await wait(message.delayMs, context)
      texts.append(message.text)
    }
    return ServerResponse(message: .with { $0.text = texts.joined(separator: " "); $0.index = UInt32(texts.count) })
  }

  func update(request: StreamingServerRequest<Pemis_V1_EchoRequest>, context: ServerContext) async throws
    -> StreamingServerResponse<Pemis_V1_EchoResponse>
  {
    StreamingServerResponse { writer in
      var index: UInt32 = 0
      for try await message in request.messages {
        try await wait(message.delayMs, context)
        try await writer.write(.with { $0.text = message.text; $0.index = index })
        index += 1
      }
      return [:]
    }
  }
}

/// A running test server on 127.0.0.1 and an ephemeral port.
struct TestServer: Sendable {
  let transport: PEMISWireServerTransport
  let server: GRPCServer<PEMISWireServerTransport>
  let port: Int
  let log: ProbeLog
}

extension PEMISWireServerTransport.Config {
  static func testing(_ configure: (inout Self) -> Void = { _ in }) -> Self {
    var config = Self.defaults
    configure(&config)
    return config
  }
}

/// Runs a probe server for the duration of `body`, then shuts it down and waits for it.
func withTestServer<R: Sendable>(
  config: PEMISWireServerTransport.Config = .defaults,
  _ body: (TestServer) async throws -> R
) async throws -> R {
  let log = ProbeLog()
  let transport = PEMISWireServerTransport(host: "127.0.0.1", port: 0, config: config)
  let server = GRPCServer(transport: transport, services: [ProbeService(log: log)])
  return try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await server.serve() }
    let address = try await transport.listeningAddress
    let testServer = TestServer(transport: transport, server: server, port: address.port!, log: log)
    let result: Result<R, any Error>
    do {
      result = .success(try await body(testServer))
    } catch {
      result = .failure(error)
    }
    server.beginGracefulShutdown()
    try await group.waitForAll()
    return try result.get()
  }
}

/// Runs `body` with a PEMIS wire client connected to `server`.
func withTestClient<R: Sendable>(
  _ server: TestServer,
  config: PEMISWireClientTransport.Config = .defaults,
  _ body: (Pemis_V1_Echo.Client<PEMISWireClientTransport>, GRPCClient<PEMISWireClientTransport>) async throws -> R
) async throws -> R {
  let transport = PEMISWireClientTransport(host: "127.0.0.1", port: server.port, config: config)
  return try await withGRPCClient(transport: transport) { client in
    try await body(Pemis_V1_Echo.Client(wrapping: client), client)
  }
}

// MARK: - Raw frames, for protocol-violation tests

/// A bare TCP connection that speaks frames by hand, to send what a well-behaved client never
/// would.
struct RawConnection {
  let channel: any Channel
  var inbound: AsyncStream<FrameDecoder.Event>.Iterator

  /// Hands decoded frames to the test; the stream ends when the server closes the connection.
  final class Collector: ChannelInboundHandler, Sendable {
    typealias InboundIn = FrameDecoder.Event
    let continuation: AsyncStream<FrameDecoder.Event>.Continuation
    init(_ continuation: AsyncStream<FrameDecoder.Event>.Continuation) { self.continuation = continuation }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { continuation.yield(unwrapInboundIn(data)) }
    func channelInactive(context: ChannelHandlerContext) { continuation.finish() }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
  }

  static func connect(port: Int) async throws -> RawConnection {
    let (stream, continuation) = AsyncStream<FrameDecoder.Event>.makeStream()
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.addHandler(
            ByteToMessageHandler(FrameDecoder(maxPayloadSize: 64 * 1024 * 1024)))
          try channel.pipeline.syncOperations.addHandler(Collector(continuation))
        }
      }
      .connect(host: "127.0.0.1", port: port).get()
    return RawConnection(channel: channel, inbound: stream.makeAsyncIterator())
  }

  func send(_ bytes: [UInt8]) async throws {
    try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
  }

  func send(_ kind: Frame.Kind, stream: UInt32, _ payload: [UInt8], flags: Frame.Flags = []) async throws {
    var buffer = ByteBuffer()
    Frame.encode(kind: kind, flags: flags, streamID: stream, bytes: payload, into: &buffer)
    try await channel.writeAndFlush(buffer)
  }

  func send(_ kind: Frame.Kind, stream: UInt32, _ message: some SwiftProtobuf.Message) async throws {
    try await send(kind, stream: stream, try message.serializedBytes() as [UInt8])
  }

  /// HELLO both ways.
  mutating func handshake(minVersion: UInt32 = 1, maxVersion: UInt32 = 1) async throws -> Frame? {
    var hello = Pemis_Wire_V1_Hello()
    hello.minVersion = minVersion
    hello.maxVersion = maxVersion
    hello.maxFrameSize = 4 * 1024 * 1024
    hello.initialStreamWindow = 64
    try await send(.hello, stream: 0, hello)
    return try await next()
  }

  /// The next frame, or nil once the server closed the connection.
  mutating func next() async throws -> Frame? {
    while let event = await inbound.next() {
      if case .frame(let frame) = event { return frame }
    }
    return nil
  }

  /// Reads until the server closes the connection; returns the frames it sent meanwhile.
  mutating func drainUntilClosed() async -> [Frame] {
    var frames: [Frame] = []
    while let frame = try? await next() { frames.append(frame) }
    return frames
  }

  func close() async {
    try? await channel.close()
  }

  static func callStart(_ method: String, timeoutMicros: UInt64 = 0) -> Pemis_Wire_V1_CallStart {
    var start = Pemis_Wire_V1_CallStart()
    start.method = method
    start.timeoutMicros = timeoutMicros
    return start
  }
}

extension Frame {
  var callEnd: Pemis_Wire_V1_CallEnd? {
    kind == .callEnd ? try? Pemis_Wire_V1_CallEnd(serializedBytes: Array(payload.readableBytesView)) : nil
  }
  var goAway: Pemis_Wire_V1_GoAway? {
    kind == .goAway ? try? Pemis_Wire_V1_GoAway(serializedBytes: Array(payload.readableBytesView)) : nil
  }
}

func echoRequest(_ text: String, delayMs: UInt32 = 0) -> [UInt8] {
  try! Pemis_V1_EchoRequest.with {
    $0.text = text
    $0.delayMs = delayMs
  }.serializedBytes()
}

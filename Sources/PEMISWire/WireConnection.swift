internal import Foundation
internal import GRPCCore
internal import Logging
internal import NIOCore
internal import SwiftProtobuf
internal import Synchronization

/// The state of one PEMIS wire connection, shared by the client and the server side.
///
/// Frames arrive on the channel's event loop (``receive(_:)``); calls write from their own tasks.
/// Everything mutable sits in one `Mutex`-guarded ``State``, and side effects (resuming tasks,
/// yielding to streams) run after the lock is released.
///
/// Writes are batched: a frame is encoded into `State.pending` under the lock, and the first
/// frame of a batch schedules one flush on the event loop. Frames written by many calls before
/// that flush runs leave in one socket write, which is most of what makes 64 concurrent callers
/// on one connection cheap.
final class WireConnection: Sendable {
  enum Role: Sendable { case client, server }

  let channel: any Channel
  let role: Role
  let localLimits: WireLimits
  let logger: Logger
  let remotePeer: String
  let localPeer: String
  /// Completed with the peer's settings when its HELLO arrives; failed if the connection closes
  /// or the handshake fails first.
  let handshake: EventLoopPromise<PeerSettings>
  /// Server role: the streams clients open, for the transport to run handlers for.
  let newStreams: AsyncStream<ServerStream>
  private let newStreamsContinuation: AsyncStream<ServerStream>.Continuation
  private let state: Mutex<State>
  private let allocator: ByteBufferAllocator
  /// Server role: how long a connection may have no open stream before it is closed.
  private let idleTimeout: TimeAmount?
  /// Server role: the server's methods by path, so descriptors carry their call type.
  private let methods: [String: MethodDescriptor]
  /// Server role: unread request bytes one connection may hold before the call receiving more
  /// is failed with RESOURCE_EXHAUSTED.
  var maxBufferedInboundBytes: Int { max(16 * 1024 * 1024, 4 * localLimits.maxFrameSize) }
  /// The most MESSAGE credit this side keeps per stream, whatever window the peer announces.
  static let maxSendWindow = 65_536

  init(
    channel: any Channel,
    role: Role,
    limits: WireLimits,
    idleTimeout: TimeAmount? = nil,
    logger: Logger,
    methods: [String: MethodDescriptor] = [:]
  ) {
    self.methods = methods
    self.channel = channel
    self.role = role
    self.localLimits = limits
    self.idleTimeout = idleTimeout
    self.remotePeer = Self.describe(channel.remoteAddress)
    self.localPeer = Self.describe(channel.localAddress)
    var logger = logger
    logger[metadataKey: "wire.peer"] = "\(self.remotePeer)"
    self.logger = logger
    self.handshake = channel.eventLoop.makePromise(of: PeerSettings.self)
    (self.newStreams, self.newStreamsContinuation) = AsyncStream.makeStream()
    self.allocator = channel.allocator
    self.state = Mutex(State(pending: channel.allocator.buffer(capacity: 1024)))
  }

  static func describe(_ address: SocketAddress?) -> String {
    switch address {
    case .v4(let a): "ipv4:\(a.host):\(address?.port ?? 0)"
    case .v6(let a): "ipv6:[\(a.host)]:\(address?.port ?? 0)"
    case .unixDomainSocket: "unix:\(address?.pathname ?? "")"
    case nil: "unknown"
    }
  }

  // MARK: State

  struct State {
    var peer: PeerSettings?
    var streams: [UInt32: StreamState] = [:]
    /// Server: the highest stream id a client opened. Client: the last id assigned.
    var highestStreamID: UInt32 = 0
    var pending: ByteBuffer
    var flushScheduled = false
    /// Set once this side sent GOAWAY: the highest stream id it still serves.
    var goAwaySent: UInt32?
    /// Set once the peer sent GOAWAY.
    var goAwayReceived: UInt32?
    var closed = false
    /// Server: when the last stream closed, for the idle timer.
    var idleSince: NIODeadline = .now()
    /// Client: calls holding a slot of the server's concurrency limit, and those waiting for one.
    var slotsInUse = 0
    var slotWaiters: [(id: Int, continuation: CheckedContinuation<Void, any Error>)] = []
    var nextWaiterID = 0
    var timers: [Scheduled<Void>] = []
    var idleTask: RepeatedTask?
    /// Set by fail(): the rest of what the peer sent is ignored.
    var failing = false
    /// Mirrors the channel's writability; message writers wait while it is false.
    var writable = true
    var writableWaiters: [(id: Int, continuation: CheckedContinuation<Void, any Error>)] = []
    /// Server: handler tasks started and not yet returned (a cancelled call's handler may still run).
    var runningHandlers = 0
    /// Server: bytes of request messages received and not yet taken by their handlers.
    var bufferedInboundBytes = 0

    var isDraining: Bool { goAwaySent != nil || goAwayReceived != nil || closed }
  }

  struct StreamState {
    enum Inbound {
      case server(AsyncThrowingStream<RPCRequestPart<[UInt8]>, any Error>.Continuation)
      case client(AsyncThrowingStream<RPCResponsePart<[UInt8]>, any Error>.Continuation)

      func yieldMessage(_ bytes: [UInt8]) {
        switch self {
        case .server(let c): c.yield(.message(bytes))
        case .client(let c): c.yield(.message(bytes))
        }
      }

      func finish(throwing error: (any Error)? = nil) {
        switch self {
        case .server(let c): c.finish(throwing: error)
        case .client(let c): c.finish(throwing: error)
        }
      }
    }

    var inbound: Inbound
    /// MESSAGE frames this side may still send before the peer grants more.
    var sendCredits: Int
    var creditWaiter: CheckedContinuation<Void, any Error>?
    /// MESSAGE frames the peer may still send before this side grants more.
    var receiveAllowance: Int
    /// Messages the application consumed since the last WINDOW_UPDATE this side sent.
    var consumedSinceGrant = 0
    /// Bytes of messages delivered to the inbound sequence and not yet consumed.
    var bufferedBytes = 0
    /// The peer will send no more messages (CLOSE_SEND received).
    var remoteClosed = false
    /// Server: where a CANCEL or deadline reaches the handler.
    var cancellation: ServerStreamCancellation?
    var deadlineTimer: Scheduled<Void>?
  }

  /// What to do after a stream was taken out of the table.
  private struct RemovedStream {
    var inbound: StreamState.Inbound
    var creditWaiter: CheckedContinuation<Void, any Error>?
    var cancellation: ServerStreamCancellation?
    var deadlineTimer: Scheduled<Void>?
    var bufferedBytes: Int

    init(_ stream: StreamState) {
      self.bufferedBytes = stream.bufferedBytes
      self.inbound = stream.inbound
      self.creditWaiter = stream.creditWaiter
      self.cancellation = stream.cancellation
      self.deadlineTimer = stream.deadlineTimer
    }

    /// Ends the stream for everyone still using it.
    func end(inboundError: (any Error)?, cancelHandler: Bool, waiterError: any Error) {
      deadlineTimer?.cancel()
      inbound.finish(throwing: inboundError)
      creditWaiter?.resume(throwing: waiterError)
      if cancelHandler { cancellation?.cancel() }
    }
  }

  var peerSettings: PeerSettings? { state.withLock { $0.peer } }

  /// Whether a client may still open new streams on this connection.
  var acceptsNewStreams: Bool { state.withLock { $0.peer != nil && !$0.isDraining } }

  // MARK: Writing

  /// Encodes frames into the pending batch and makes sure a flush is scheduled.
  /// Returns false, writing nothing, when the connection is closed.
  @discardableResult
  private func enqueue(_ encode: (inout ByteBuffer) -> Void) -> Bool {
    let (written, schedule) = state.withLock { state -> (Bool, Bool) in
      guard !state.closed else { return (false, false) }
      encode(&state.pending)
      defer { state.flushScheduled = true }
      return (true, !state.flushScheduled)
    }
    if schedule { channel.eventLoop.execute { self.flushPending() } }
    return written
  }

  /// Schedules a flush if the caller wrote into `State.pending` under its own lock.
  private func scheduleFlush(_ state: inout State) -> Bool {
    defer { state.flushScheduled = true }
    return !state.flushScheduled
  }

  private func flushPending() {
    let batch = state.withLock { state -> ByteBuffer? in
      state.flushScheduled = false
      guard state.pending.readableBytes > 0, !state.closed else { return nil }
      let batch = state.pending
      state.pending = allocator.buffer(capacity: 1024)
      return batch
    }
    if let batch { channel.writeAndFlush(batch, promise: nil) }
  }

  private func sendControl(
    _ kind: Frame.Kind, streamID: UInt32, _ message: some SwiftProtobuf.Message
  ) {
    let bytes: [UInt8] = (try? message.serializedBytes()) ?? []
    enqueue { Frame.encode(kind: kind, streamID: streamID, bytes: bytes, into: &$0) }
  }

  /// Sends GOAWAY with `code` and closes the connection once it is written.
  func fail(_ code: Pemis_Wire_V1_GoAway.Code, _ reason: String) {
    let (last, first) = state.withLock { state -> (UInt32, Bool) in
      defer { state.failing = true }
      return (state.highestStreamID, !state.failing)
    }
    guard first else { return }
    logger.warning(
      "closing connection: \(reason)",
      metadata: ["wire.goaway.code": "\(code)"])
    var goAway = Pemis_Wire_V1_GoAway()
    // Only a server accepts streams; a client's GOAWAY carries 0.
    goAway.lastStreamID = role == .server ? last : 0
    goAway.code = code
    goAway.reason = reason
    sendControl(.goAway, streamID: 0, goAway)
    channel.eventLoop.execute {
      self.flushPending()
      self.channel.close(promise: nil)
    }
  }

  // MARK: Handshake

  /// Client: sends HELLO as soon as the TCP connection is up. Server: arms the handshake and idle
  /// timers.
  func channelActive(handshakeTimeout: TimeAmount) {
    switch role {
    case .client:
      sendControl(.hello, streamID: 0, helloMessage(min: WireProtocol.version, max: WireProtocol.version))
    case .server:
      break
    }
    let timer = channel.eventLoop.scheduleTask(in: handshakeTimeout) {
      if self.state.withLock({ $0.peer == nil && !$0.closed }) {
        self.fail(.protocolError, "no HELLO within \(handshakeTimeout.nanoseconds / 1_000_000) ms")
      }
    }
    state.withLock { $0.timers.append(timer) }
  }

  private func helloMessage(min: UInt32, max: UInt32) -> Pemis_Wire_V1_Hello {
    var hello = Pemis_Wire_V1_Hello()
    hello.minVersion = min
    hello.maxVersion = max
    hello.maxFrameSize = UInt32(localLimits.maxFrameSize)
    hello.initialStreamWindow = UInt32(localLimits.initialStreamWindow)
    if role == .server { hello.maxConcurrentStreams = UInt32(localLimits.maxConcurrentStreams) }
    hello.agent = "pemis-wire-swift/\(WireProtocol.version)"
    return hello
  }

  private func receiveHello(_ frame: Frame) {
    guard frame.streamID == 0, let hello = try? Pemis_Wire_V1_Hello(serializedBytes: Array(frame.payload.readableBytesView))
    else { return fail(.protocolError, "HELLO must be on stream 0 and carry a Hello message") }
    let version: UInt32
    switch role {
    case .server:
      guard hello.minVersion <= WireProtocol.version, WireProtocol.version <= hello.maxVersion else {
        return fail(
          .unsupportedVersion,
          "client speaks versions \(hello.minVersion)-\(hello.maxVersion); this server speaks \(WireProtocol.version)")
      }
      version = WireProtocol.version
    case .client:
      guard hello.minVersion == WireProtocol.version, hello.maxVersion == hello.minVersion else {
        return fail(.unsupportedVersion, "server chose version \(hello.minVersion); this client speaks \(WireProtocol.version)")
      }
      version = hello.minVersion
    }
    guard hello.maxFrameSize >= 1024, hello.initialStreamWindow >= 1 else {
      return fail(.protocolError, "HELLO limits too small: max_frame_size must be at least 1024 and initial_stream_window at least 1")
    }
    let peer = PeerSettings(
      version: version,
      maxFrameSize: Int(hello.maxFrameSize),
      initialStreamWindow: min(Int(hello.initialStreamWindow), Self.maxSendWindow),
      maxConcurrentStreams: hello.maxConcurrentStreams == 0 ? Int.max : Int(hello.maxConcurrentStreams),
      agent: hello.agent)
    state.withLock {
      $0.peer = peer
      $0.idleSince = .now()
    }
    if role == .server {
      sendControl(.hello, streamID: 0, helloMessage(min: version, max: version))
      startIdleTimer()
    }
    handshake.succeed(peer)
  }

  private func startIdleTimer() {
    guard let idleTimeout else { return }
    let period = TimeAmount.nanoseconds(max(idleTimeout.nanoseconds / 4, 1_000_000))
    let task = channel.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
      let idle = self.state.withLock { state in
        state.streams.isEmpty && !state.closed && NIODeadline.now() - state.idleSince >= idleTimeout
      }
      if idle {
        self.logger.debug("closing idle connection")
        var goAway = Pemis_Wire_V1_GoAway()
        goAway.lastStreamID = self.state.withLock { $0.highestStreamID }
        goAway.code = .idleTimeout
        goAway.reason = "no call for \(idleTimeout.nanoseconds / 1_000_000_000) s"
        self.sendControl(.goAway, streamID: 0, goAway)
        self.state.withLock { $0.goAwaySent = $0.highestStreamID }
        self.channel.eventLoop.execute {
          self.flushPending()
          self.channel.close(promise: nil)
        }
      }
    }
    state.withLock { $0.idleTask = task }
  }

  // MARK: Reading

  /// Handles one decoded frame. Runs on the channel's event loop.
  func receive(_ event: FrameDecoder.Event) {
    if state.withLock({ $0.failing || $0.closed }) { return }
    switch event {
    case .oversized(let kind, _, let streamID, let length):
      receiveOversized(kind: kind, streamID: streamID, length: length)
    case .frame(let frame):
      guard state.withLock({ $0.peer != nil }) else {
        if frame.kind == .hello { return receiveHello(frame) }
        return fail(.protocolError, "expected HELLO as the first frame, got \(frame.kind)")
      }
      let callKinds: Set<Frame.Kind> = [.callStart, .responseStart, .message, .closeSend, .callEnd, .cancel]
      if frame.streamID == 0 && callKinds.contains(frame.kind) {
        return fail(.protocolError, "\(frame.kind) on stream 0, which is reserved for the connection")
      }
      if frame.streamID != 0 && (frame.kind == .hello || frame.kind == .goAway || frame.kind == .ping) {
        return fail(.protocolError, "\(frame.kind) on stream \(frame.streamID): it belongs on stream 0")
      }
      switch frame.kind {
      case .hello: fail(.protocolError, "HELLO sent twice")
      case .callStart: role == .server ? receiveCallStart(frame) : fail(.protocolError, "CALL_START sent by the server")
      case .responseStart: role == .client ? receiveResponseStart(frame) : fail(.protocolError, "RESPONSE_START sent by a client")
      case .message: receiveMessage(frame)
      case .closeSend: role == .server ? receiveCloseSend(frame) : fail(.protocolError, "CLOSE_SEND sent by the server")
      case .callEnd: role == .client ? receiveCallEnd(frame) : fail(.protocolError, "CALL_END sent by a client")
      case .cancel: role == .server ? receiveCancel(frame) : fail(.protocolError, "CANCEL sent by the server")
      case .ping: receivePing(frame)
      case .goAway: receiveGoAway(frame)
      case .windowUpdate: receiveWindowUpdate(frame)
      default: break  // Unknown kinds are ignored so later versions can add them.
      }
    }
  }

  private func receiveOversized(kind: Frame.Kind, streamID: UInt32, length: Int) {
    let limit = localLimits.maxFrameSize
    let reason = "\(kind) frame of \(length) bytes exceeds the limit of \(limit) bytes"
    let (known, shaken) = state.withLock { ($0.streams[streamID] != nil, $0.peer != nil) }
    guard shaken else { return fail(.frameTooLarge, reason) }
    switch (role, kind) {
    case (.server, .message) where known:
      logger.info("failing call: \(reason)", metadata: ["wire.stream": "\(streamID)"])
      endServerStream(
        streamID, status: Status(code: .resourceExhausted, message: reason), trailers: [:],
        cancelHandler: true)
    case (.server, .callStart) where streamID > state.withLock({ $0.highestStreamID }) && streamID % 2 == 1:
      state.withLock { $0.highestStreamID = streamID }
      logger.info("refusing call: \(reason)", metadata: ["wire.stream": "\(streamID)"])
      sendCallEnd(streamID, Status(code: .resourceExhausted, message: reason), [:])
    case (.client, .message) where known:
      cancelClientStream(streamID, error: RPCError(code: .resourceExhausted, message: reason), reason: reason)
    default:
      fail(.frameTooLarge, reason)
    }
  }

  private func receiveCallStart(_ frame: Frame) {
    let id = frame.streamID
    let (highest, draining) = state.withLock { ($0.highestStreamID, $0.goAwaySent) }
    guard id % 2 == 1, id > highest else {
      return fail(.protocolError, "CALL_START on stream \(id): client streams must be odd and increasing (last was \(highest))")
    }
    guard let start = try? Pemis_Wire_V1_CallStart(serializedBytes: Array(frame.payload.readableBytesView)) else {
      return fail(.protocolError, "CALL_START on stream \(id) does not hold a CallStart message")
    }
    state.withLock { $0.highestStreamID = id }
    if draining != nil {
      return sendCallEnd(id, Status(code: .unavailable, message: "server is shutting down; call not started"), [:])
    }
    guard let descriptor = methods[start.method] ?? MethodDescriptor(path: start.method) else {
      return sendCallEnd(id, Status(code: .unimplemented, message: "malformed method path '\(start.method.prefix(100))': expected /package.Service/Method"), [:])
    }
    var metadata = Metadata(wireEntries: start.metadata)
    metadata.removeAllValues(forKey: GRPCTimeout.key)
    var deadline: ContinuousClock.Instant?
    if start.timeoutMicros > 0 {
      let micros = min(start.timeoutMicros, UInt64(Int64.max / 1_000))
      metadata.addString(GRPCTimeout.encode(microseconds: micros), forKey: GRPCTimeout.key)
      deadline = ContinuousClock.now.advanced(by: .microseconds(Int64(micros)))
    }

    let (inbound, continuation) = AsyncThrowingStream<RPCRequestPart<[UInt8]>, any Error>.makeStream()
    continuation.yield(.metadata(metadata))
    let cancellation = ServerStreamCancellation()
    let admitted = state.withLock { state -> Bool in
      // Handlers of cancelled calls may still be winding down; they count too, within reason.
      guard state.streams.count < localLimits.maxConcurrentStreams,
        state.runningHandlers < 2 * localLimits.maxConcurrentStreams, let peer = state.peer
      else { return false }
      state.runningHandlers += 1
      state.streams[id] = StreamState(
        inbound: .server(continuation),
        sendCredits: peer.initialStreamWindow,
        receiveAllowance: localLimits.initialStreamWindow,
        cancellation: cancellation)
      return true
    }
    guard admitted else {
      continuation.finish()
      return sendCallEnd(
        id,
        Status(code: .resourceExhausted, message: "too many concurrent calls on this connection (limit \(localLimits.maxConcurrentStreams))"),
        [:])
    }
    if deadline != nil {
      let micros = Int64(min(start.timeoutMicros, UInt64(Int64.max / 1_000)))
      let timer = channel.eventLoop.scheduleTask(in: .microseconds(micros)) {
        _ = self.endServerStream(
          id,
          status: Status(code: .deadlineExceeded, message: "deadline of \(start.timeoutMicros / 1000) ms exceeded"),
          trailers: [:], cancelHandler: true)
      }
      state.withLock { $0.streams[id]?.deadlineTimer = timer }
    }
    let stream = ServerStream(
      connection: self, id: id, descriptor: descriptor, deadline: deadline,
      inbound: inbound, cancellation: cancellation)
    newStreamsContinuation.yield(stream)
  }

  /// A frame for a stream that is not open: fine if it ended a moment ago, a violation if it was
  /// never opened. Returns true when the frame should just be ignored.
  private func ignoreOrFailUnknown(_ frame: Frame) -> Bool {
    let highest = state.withLock { $0.highestStreamID }
    if frame.streamID <= highest { return true }
    fail(.protocolError, "\(frame.kind) on stream \(frame.streamID), which was never opened")
    return false
  }

  private func receiveResponseStart(_ frame: Frame) {
    guard let start = try? Pemis_Wire_V1_ResponseStart(serializedBytes: Array(frame.payload.readableBytesView)) else {
      return fail(.protocolError, "RESPONSE_START on stream \(frame.streamID) does not hold a ResponseStart message")
    }
    guard case .client(let c)? = state.withLock({ $0.streams[frame.streamID]?.inbound }) else {
      _ = ignoreOrFailUnknown(frame)
      return
    }
    c.yield(.metadata(Metadata(wireEntries: start.metadata)))
  }

  private func receiveMessage(_ frame: Frame) {
    let id = frame.streamID
    enum Outcome { case deliver(StreamState.Inbound), ignore, violation(String), overflow }
    let size = frame.payload.readableBytes
    let outcome = state.withLock { state -> Outcome in
      guard var stream = state.streams[id] else {
        // A stream that ended (or was cancelled) a moment ago may still receive frames in flight.
        return id <= state.highestStreamID ? .ignore : .violation("MESSAGE on stream \(id), which was never opened")
      }
      if stream.remoteClosed { return .violation("MESSAGE on stream \(id) after CLOSE_SEND") }
      if stream.receiveAllowance <= 0 {
        return .violation("MESSAGE on stream \(id) beyond the flow-control window")
      }
      stream.receiveAllowance -= 1
      if role == .server && state.bufferedInboundBytes + size > maxBufferedInboundBytes { return .overflow }
      stream.bufferedBytes += size
      state.bufferedInboundBytes += size
      state.streams[id] = stream
      return .deliver(stream.inbound)
    }
    switch outcome {
    case .deliver(let inbound): inbound.yieldMessage(Array(frame.payload.readableBytesView))
    case .ignore: break
    case .violation(let reason): fail(.protocolError, reason)
    case .overflow:
      endServerStream(
        id,
        status: Status(
          code: .resourceExhausted,
          message: "unread request data on this connection would exceed \(maxBufferedInboundBytes) bytes"),
        trailers: [:], cancelHandler: true)
    }
  }

  private func receiveCloseSend(_ frame: Frame) {
    let inbound = state.withLock { state -> StreamState.Inbound? in
      state.streams[frame.streamID]?.remoteClosed = true
      return state.streams[frame.streamID]?.inbound
    }
    guard let inbound else { _ = ignoreOrFailUnknown(frame); return }
    inbound.finish()
  }

  private func receiveCallEnd(_ frame: Frame) {
    guard let end = try? Pemis_Wire_V1_CallEnd(serializedBytes: Array(frame.payload.readableBytesView)) else {
      return fail(.protocolError, "CALL_END on stream \(frame.streamID) does not hold a CallEnd message")
    }
    guard let (removed, closeNow) = takeStream(frame.streamID) else { _ = ignoreOrFailUnknown(frame); return }
    let code = Status.Code(rawValue: Int(end.code)) ?? .unknown
    if case .client(let c) = removed.inbound {
      c.yield(.status(Status(code: code, message: end.message), Metadata(wireEntries: end.trailers)))
    }
    removed.end(
      inboundError: nil, cancelHandler: false,
      waiterError: RPCError(code: RPCError.Code(code) ?? .cancelled, message: "call ended: \(end.message)"))
    if closeNow { close() }
  }

  private func receiveCancel(_ frame: Frame) {
    let reason = (try? Pemis_Wire_V1_Cancel(serializedBytes: Array(frame.payload.readableBytesView)))?.reason ?? ""
    guard let (removed, closeNow) = takeStream(frame.streamID) else { _ = ignoreOrFailUnknown(frame); return }
    defer { if closeNow { close() } }
    logger.debug("call cancelled by client", metadata: ["wire.stream": "\(frame.streamID)", "wire.reason": "\(reason)"])
    let error = RPCError(code: .cancelled, message: "client cancelled the call\(reason.isEmpty ? "" : ": \(reason)")")
    removed.end(inboundError: error, cancelHandler: true, waiterError: error)
  }

  private func receivePing(_ frame: Frame) {
    guard frame.streamID == 0, frame.payload.readableBytes == 8 else {
      return fail(.protocolError, "PING must be on stream 0 with an 8-byte payload")
    }
    if frame.flags.contains(.ack) { return }
    enqueue { Frame.encode(kind: .ping, flags: .ack, streamID: 0, payload: frame.payload, into: &$0) }
  }

  private func receiveGoAway(_ frame: Frame) {
    guard let goAway = try? Pemis_Wire_V1_GoAway(serializedBytes: Array(frame.payload.readableBytesView)) else {
      return fail(.protocolError, "GOAWAY does not hold a GoAway message")
    }
    logger.debug("peer is going away: \(goAway.reason)", metadata: ["wire.goaway.code": "\(goAway.code)"])
    let (unprocessed, empty, waiters) = state.withLock { state -> ([RemovedStream], Bool, [CheckedContinuation<Void, any Error>]) in
      state.goAwayReceived = goAway.lastStreamID
      let waiters = state.slotWaiters.map(\.continuation)
      state.slotWaiters.removeAll()
      // A client's GOAWAY only says it opens no more calls: its open calls run to the end.
      let ids = role == .server ? [] : state.streams.keys.filter { $0 > goAway.lastStreamID }
      let removed = ids.compactMap { state.streams.removeValue(forKey: $0).map(RemovedStream.init) }
      for stream in removed { state.bufferedInboundBytes -= stream.bufferedBytes }
      return (removed, state.streams.isEmpty, waiters)
    }
    // Calls still waiting for a slot here were never sent: they go to a new connection.
    for waiter in waiters { waiter.resume(throwing: ConnectionDraining()) }
    let error = RPCError(code: .unavailable, message: "server is going away (\(goAway.reason)); the call was not processed")
    for stream in unprocessed { stream.end(inboundError: error, cancelHandler: true, waiterError: error) }
    if empty { close() }
  }

  private func receiveWindowUpdate(_ frame: Frame) {
    guard let increment = frame.payload.getInteger(at: frame.payload.readerIndex, endianness: .big, as: UInt32.self),
      frame.payload.readableBytes == 4, increment > 0
    else { return fail(.protocolError, "WINDOW_UPDATE must carry a 4-byte increment above 0") }
    if frame.streamID == 0 { return }  // reserved
    enum Outcome { case resume(CheckedContinuation<Void, any Error>?), unknown, overflow }
    let outcome = state.withLock { state -> Outcome in
      guard var stream = state.streams[frame.streamID] else { return .unknown }
      guard stream.sendCredits + Int(increment) <= Int(Int32.max) else { return .overflow }
      stream.sendCredits += Int(increment)
      let waiter = stream.creditWaiter
      stream.creditWaiter = nil
      state.streams[frame.streamID] = stream
      return .resume(waiter)
    }
    switch outcome {
    case .resume(let waiter): waiter?.resume()
    case .unknown: _ = ignoreOrFailUnknown(frame)
    case .overflow: fail(.protocolError, "WINDOW_UPDATE on stream \(frame.streamID) raises the window above 2^31-1")
    }
  }

  // MARK: Closing

  /// Called when the channel closed, for whatever reason: ends every stream still open.
  func channelClosed(error: (any Error)?) {
    let alreadyClosed = state.withLock { state in
      defer { state.closed = true }
      return state.closed
    }
    guard !alreadyClosed else { return }
    let (streams, waiters, timers, idleTask, handshakeDone) = state.withLock { state in
      let streams = state.streams.values.map(RemovedStream.init)
      state.streams.removeAll()
      let waiters = state.slotWaiters.map(\.continuation) + state.writableWaiters.map(\.continuation)
      state.slotWaiters.removeAll()
      state.writableWaiters.removeAll()
      defer { state.timers.removeAll(); state.idleTask = nil }
      return (streams, waiters, state.timers, state.idleTask, state.peer != nil)
    }
    let reason = error.map { "connection to \(remotePeer) lost: \($0)" } ?? "connection to \(remotePeer) closed"
    let rpcError = RPCError(code: .unavailable, message: reason)
    for stream in streams { stream.end(inboundError: rpcError, cancelHandler: true, waiterError: rpcError) }
    for waiter in waiters { waiter.resume(throwing: rpcError) }
    for timer in timers { timer.cancel() }
    idleTask?.cancel()
    if !handshakeDone { handshake.fail(rpcError) }
    newStreamsContinuation.finish()
    if !streams.isEmpty {
      logger.debug("connection closed with \(streams.count) calls open: \(reason)")
    }
  }

  func close() {
    channel.eventLoop.execute {
      self.flushPending()
      self.channel.close(promise: nil)
    }
  }

  /// Sends GOAWAY and closes once the streams still open have ended (graceful shutdown).
  func beginDraining(reason: String) {
    // Before the handshake there is nothing to drain, and a GOAWAY would precede our HELLO.
    if state.withLock({ $0.peer == nil }) { return close() }
    let (first, last, empty) = state.withLock { state -> (Bool, UInt32, Bool) in
      let first = state.goAwaySent == nil
      if first { state.goAwaySent = state.highestStreamID }
      return (first, state.highestStreamID, state.streams.isEmpty)
    }
    if first {
      var goAway = Pemis_Wire_V1_GoAway()
      goAway.lastStreamID = role == .server ? last : 0
      goAway.code = .noError
      goAway.reason = reason
      sendControl(.goAway, streamID: 0, goAway)
    }
    if empty { close() }
  }

  /// Ends every open stream now (the grace period ran out), then closes.
  func cancelAllStreams(reason: String) {
    let streams = state.withLock { state in
      defer {
        state.streams.removeAll()
        state.bufferedInboundBytes = 0
      }
      return state.streams
    }
    for (id, stream) in streams {
      if role == .server {
        enqueue { buffer in
          var end = Pemis_Wire_V1_CallEnd()
          end.code = UInt32(Status.Code.unavailable.rawValue)
          end.message = reason
          Frame.encode(kind: .callEnd, streamID: id, bytes: (try? end.serializedBytes() as [UInt8]) ?? [], into: &buffer)
        }
      }
      let error = RPCError(code: .unavailable, message: reason)
      RemovedStream(stream).end(inboundError: error, cancelHandler: true, waiterError: error)
    }
    close()
  }

  /// Takes a stream out of the table. The second value says the connection should close (it is
  /// draining and this was its last stream); the caller closes *after* queuing its final frame,
  /// so that frame is not lost.
  private func takeStream(_ id: UInt32) -> (RemovedStream, Bool)? {
    state.withLock { state -> (RemovedStream, Bool)? in
      guard let stream = state.streams.removeValue(forKey: id) else { return nil }
      state.bufferedInboundBytes -= stream.bufferedBytes
      if state.streams.isEmpty { state.idleSince = .now() }
      return (RemovedStream(stream), state.streams.isEmpty && state.isDraining && !state.closed)
    }
  }

  // MARK: Flow control

  /// Called as the application takes a message from a stream's inbound sequence: returns credit
  /// to the peer once half the window has been consumed.
  func messageConsumed(_ id: UInt32, size: Int) {
    let grant = state.withLock { state -> UInt32? in
      guard var stream = state.streams[id] else { return nil }
      stream.bufferedBytes -= size
      state.bufferedInboundBytes -= size
      defer { state.streams[id] = stream }
      guard !stream.remoteClosed else { return nil }
      stream.consumedSinceGrant += 1
      var grant: UInt32?
      if stream.consumedSinceGrant * 2 >= localLimits.initialStreamWindow {
        grant = UInt32(stream.consumedSinceGrant)
        stream.receiveAllowance += stream.consumedSinceGrant
        stream.consumedSinceGrant = 0
      }
      return grant
    }
    if let grant {
      enqueue { buffer in
        Frame.writeHeader(kind: .windowUpdate, flags: [], streamID: id, length: 4, into: &buffer)
        buffer.writeInteger(grant, endianness: .big)
      }
    }
  }

  /// Sends one MESSAGE frame, waiting for flow-control credit if the peer's window is used up.
  func sendMessage(_ id: UInt32, _ bytes: [UInt8]) async throws {
    if let peer = peerSettings, bytes.count > peer.maxFrameSize {
      throw RPCError(
        code: .resourceExhausted,
        message: "message of \(bytes.count) bytes exceeds the peer's limit of \(peer.maxFrameSize) bytes")
    }
    while true {
      enum Step { case sent, wait, blocked, gone }
      let (step, schedule) = state.withLock { state -> (Step, Bool) in
        guard !state.closed, var stream = state.streams[id] else { return (.gone, false) }
        guard state.writable else { return (.blocked, false) }
        guard stream.sendCredits > 0 else { return (.wait, false) }
        stream.sendCredits -= 1
        state.streams[id] = stream
        Frame.encode(kind: .message, streamID: id, bytes: bytes, into: &state.pending)
        return (.sent, scheduleFlush(&state))
      }
      switch step {
      case .sent:
        if schedule { channel.eventLoop.execute { self.flushPending() } }
        return
      case .gone:
        throw RPCError(code: .cancelled, message: "the call has already ended")
      case .blocked:
        try await waitUntilWritable()
      case .wait:
        try await withTaskCancellationHandler {
          try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let resumeNow = state.withLock { state -> Bool in
              guard var stream = state.streams[id] else { return true }
              if stream.sendCredits > 0 || Task.isCancelled { return true }
              stream.creditWaiter = continuation
              state.streams[id] = stream
              return false
            }
            if resumeNow { continuation.resume() }
          }
        } onCancel: {
          let waiter = self.state.withLock { state -> CheckedContinuation<Void, any Error>? in
            defer { state.streams[id]?.creditWaiter = nil }
            return state.streams[id]?.creditWaiter
          }
          waiter?.resume(throwing: CancellationError())
        }
      }
    }
  }
}

// MARK: - Writability

extension WireConnection {
  /// Called on the event loop when the channel's writability changes.
  func writabilityChanged(_ writable: Bool) {
    let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
      state.writable = writable
      guard writable else { return [] }
      defer { state.writableWaiters.removeAll() }
      return state.writableWaiters.map(\.continuation)
    }
    for waiter in waiters { waiter.resume() }
  }

  /// Waits until the socket takes data again, so a peer that does not read cannot make us
  /// buffer messages without bound.
  private func waitUntilWritable() async throws {
    let waiterID = state.withLock { state in
      defer { state.nextWaiterID += 1 }
      return state.nextWaiterID
    }
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
        let now = state.withLock { state -> Result<Bool, any Error> in
          if state.closed { return .failure(RPCError(code: .unavailable, message: "connection closed")) }
          if Task.isCancelled { return .failure(CancellationError()) }
          if state.writable { return .success(true) }
          state.writableWaiters.append((waiterID, continuation))
          return .success(false)
        }
        switch now {
        case .success(true): continuation.resume()
        case .success(false): break
        case .failure(let error): continuation.resume(throwing: error)
        }
      }
    } onCancel: {
      let waiter = self.state.withLock { state -> CheckedContinuation<Void, any Error>? in
        guard let index = state.writableWaiters.firstIndex(where: { $0.id == waiterID }) else { return nil }
        return state.writableWaiters.remove(at: index).continuation
      }
      waiter?.resume(throwing: CancellationError())
    }
  }

  /// Server: a handler task returned.
  func handlerFinished() {
    state.withLock { $0.runningHandlers -= 1 }
  }
}

/// The connection is going away; the call was not sent and can use a new connection.
struct ConnectionDraining: Error {}

// MARK: - Server side

extension WireConnection {
  func sendResponseStart(_ id: UInt32, _ metadata: Metadata) throws {
    var start = Pemis_Wire_V1_ResponseStart()
    start.metadata = metadata.wireEntries
    let bytes: [UInt8] = try start.serializedBytes()
    let open = state.withLock { $0.streams[id] != nil }
    guard open else { throw RPCError(code: .cancelled, message: "the call has already ended") }
    enqueue { Frame.encode(kind: .responseStart, streamID: id, bytes: bytes, into: &$0) }
  }

  /// Sends CALL_END for a stream that was never admitted to the table (refused calls).
  func sendCallEnd(_ id: UInt32, _ status: Status, _ trailers: Metadata) {
    var end = Pemis_Wire_V1_CallEnd()
    end.code = UInt32(status.code.rawValue)
    end.message = status.message
    end.trailers = trailers.wireEntries
    // The status must reach the client even if its trailers do not fit its frame limit.
    if let limit = peerSettings?.maxFrameSize, ((try? end.serializedBytes() as [UInt8])?.count ?? 0) > limit {
      end.trailers = []
      end.message = String(end.message.prefix(200)) + " (trailers dropped: too large for the client's frame limit)"
    }
    sendControl(.callEnd, streamID: id, end)
  }

  /// Sends CALL_END and ends the stream. Returns false if the stream had already ended.
  @discardableResult
  func endServerStream(_ id: UInt32, status: Status, trailers: Metadata, cancelHandler: Bool) -> Bool {
    guard let (removed, closeNow) = takeStream(id) else { return false }
    sendCallEnd(id, status, trailers)
    if closeNow { close() }
    let error = RPCError(code: status.code == .ok ? .cancelled : RPCError.Code(status.code) ?? .unknown, message: status.message)
    removed.end(inboundError: cancelHandler ? error : nil, cancelHandler: cancelHandler, waiterError: error)
    return true
  }
}

// MARK: - Client side

extension WireConnection {
  /// Waits for a slot under the server's concurrent-stream limit.
  func acquireSlot() async throws {
    let granted = try state.withLock { state -> Bool in
      if state.closed || state.isDraining { throw ConnectionDraining() }
      let limit = state.peer?.maxConcurrentStreams ?? Int.max
      if state.slotsInUse < limit && state.slotWaiters.isEmpty {
        state.slotsInUse += 1
        return true
      }
      return false
    }
    if granted { return }
    let waiterID = state.withLock { state in
      defer { state.nextWaiterID += 1 }
      return state.nextWaiterID
    }
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
        let outcome = state.withLock { state -> Result<Bool, any Error> in
          if state.closed || state.isDraining { return .failure(ConnectionDraining()) }
          if Task.isCancelled { return .failure(CancellationError()) }
          let limit = state.peer?.maxConcurrentStreams ?? Int.max
          if state.slotsInUse < limit && state.slotWaiters.isEmpty {
            state.slotsInUse += 1
            return .success(true)
          }
          state.slotWaiters.append((waiterID, continuation))
          return .success(false)
        }
        switch outcome {
        case .success(true): continuation.resume()
        case .success(false): break
        case .failure(let error): continuation.resume(throwing: error)
        }
      }
    } onCancel: {
      let waiter = self.state.withLock { state -> CheckedContinuation<Void, any Error>? in
        guard let index = state.slotWaiters.firstIndex(where: { $0.id == waiterID }) else { return nil }
        return state.slotWaiters.remove(at: index).continuation
      }
      waiter?.resume(throwing: CancellationError())
    }
  }

  /// Gives back `count` slots, handing each to the longest waiting call.
  func releaseSlots(_ count: Int = 1) {
    guard count > 0 else { return }
    let woken = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
      state.slotsInUse -= count
      var woken: [CheckedContinuation<Void, any Error>] = []
      let limit = state.peer?.maxConcurrentStreams ?? Int.max
      while state.slotsInUse < limit, !state.slotWaiters.isEmpty {
        woken.append(state.slotWaiters.removeFirst().continuation)
        state.slotsInUse += 1
      }
      return woken
    }
    for continuation in woken { continuation.resume() }
  }

  /// Assigns the next stream id and sends CALL_START, atomically, so ids leave in order.
  func startClientStream(
    method: String, metadata: Metadata, timeoutMicros: UInt64,
    inbound: AsyncThrowingStream<RPCResponsePart<[UInt8]>, any Error>.Continuation,
    claim: (UInt32) -> Bool
  ) throws -> UInt32 {
    var start = Pemis_Wire_V1_CallStart()
    start.method = method
    start.metadata = metadata.wireEntries
    start.timeoutMicros = timeoutMicros
    let bytes: [UInt8] = try start.serializedBytes()
    if let peer = peerSettings, bytes.count > peer.maxFrameSize {
      throw RPCError(code: .resourceExhausted, message: "call metadata of \(bytes.count) bytes exceeds the server's limit of \(peer.maxFrameSize) bytes")
    }
    let (id, schedule) = try state.withLock { state -> (UInt32, Bool) in
      guard !state.closed, let peer = state.peer else {
        throw RPCError(code: .unavailable, message: "connection to \(remotePeer) is closed")
      }
      if state.goAwayReceived != nil {
        throw RPCError(code: .unavailable, message: "server is going away; the call was not started")
      }
      let id = state.highestStreamID == 0 ? 1 : state.highestStreamID + 2
      // The call records its id under this same lock, or learns it was cancelled meanwhile.
      guard claim(id) else { throw CancellationError() }
      state.highestStreamID = id
      state.streams[id] = StreamState(
        inbound: .client(inbound), sendCredits: peer.initialStreamWindow,
        receiveAllowance: localLimits.initialStreamWindow)
      Frame.encode(kind: .callStart, streamID: id, bytes: bytes, into: &state.pending)
      return (id, scheduleFlush(&state))
    }
    if schedule { channel.eventLoop.execute { self.flushPending() } }
    return id
  }

  func sendCloseSend(_ id: UInt32) {
    let open = state.withLock { $0.streams[id] != nil }
    if open { enqueue { Frame.writeHeader(kind: .closeSend, flags: [], streamID: id, length: 0, into: &$0) } }
  }

  /// Abandons a client stream: tells the server (CANCEL) and ends the local inbound sequence.
  /// Returns false if the stream had already ended.
  @discardableResult
  func cancelClientStream(_ id: UInt32, error: any Error, reason: String) -> Bool {
    guard let (removed, closeNow) = takeStream(id) else { return false }
    var cancel = Pemis_Wire_V1_Cancel()
    cancel.reason = reason
    sendControl(.cancel, streamID: id, cancel)
    removed.end(inboundError: error, cancelHandler: false, waiterError: error)
    if closeNow { close() }
    return true
  }
}

extension MethodDescriptor {
  /// Parses "/package.Service/Method".
  init?(path: String) {
    guard path.first == "/", let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return nil }
    let service = path[path.index(after: path.startIndex)..<slash]
    let method = path[path.index(after: slash)...]
    guard !service.isEmpty, !method.isEmpty else { return nil }
    self.init(fullyQualifiedService: String(service), method: String(method))
  }
}

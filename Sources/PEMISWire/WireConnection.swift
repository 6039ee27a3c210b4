internal import Foundation
internal import GRPCCore
internal import Logging
internal import NIOCore
internal import SwiftProtobuf
internal import Synchronization

/// One PEMIS wire connection, client or server side: the NIO shell around its
/// ``StateMachine``.
///
/// Frames arrive on the channel's event loop (``receive(_:)``); calls write from their own tasks.
/// The protocol decisions are the state machine's; this class holds it, with what cannot be pure
/// (the calls' inbound sequences, waiting tasks, timers), in one `Mutex`-guarded ``State``, and
/// performs the actions it returns after the lock is released.
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
  /// Server role: the budget, timeouts and log limit shared by all connections of the server.
  let governance: WireGovernance?

  init(
    channel: any Channel,
    role: Role,
    limits: WireLimits,
    idleTimeout: TimeAmount? = nil,
    logger: Logger,
    methods: [String: MethodDescriptor] = [:],
    governance: WireGovernance? = nil
  ) {
    self.channel = channel
    self.role = role
    self.localLimits = limits
    self.governance = governance
    self.remotePeer = Self.describe(channel.remoteAddress)
    self.localPeer = Self.describe(channel.localAddress)
    var logger = logger
    logger[metadataKey: "wire.peer"] = "\(self.remotePeer)"
    self.logger = logger
    self.handshake = channel.eventLoop.makePromise(of: PeerSettings.self)
    (self.newStreams, self.newStreamsContinuation) = AsyncStream.makeStream()
    self.allocator = channel.allocator
    let machine = StateMachine(
      role: role, limits: limits,
      timeouts: StateMachine.Timeouts(
        handshake: .seconds(10), idle: role == .server ? idleTimeout : nil,
        halfClose: governance?.halfCloseTimeout, unreadResponses: governance?.unreadResponseTimeout),
      now: .now(),
      maxBufferedInboundBytes: governance?.maxBufferedRequestBytesPerConnection,
      maxUnwrittenBytes: governance?.maxUnwrittenBytesPerConnection ?? Int.max,
      methods: methods)
    self.state = Mutex(State(machine: machine, pending: channel.allocator.buffer(capacity: 1024)))
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
    var machine: StateMachine
    /// What each open stream's tasks wait on; its keys are the machine's open streams.
    var io: [UInt32: StreamIO] = [:]
    var pending: ByteBuffer
    var flushScheduled = false
    /// Bytes allocated for batches handed to the channel and not yet written. NIO rounds a
    /// buffer up to a power of two, so a 64 KiB answer costs 128 KiB until the socket takes it:
    /// the budget counts what is allocated, not only what is unwritten.
    var batchesAllocated = 0
    /// Client: calls holding a slot of the server's concurrency limit, and those waiting for one.
    var slotsInUse = 0
    var slotWaiters: [(id: Int, continuation: CheckedContinuation<Void, any Error>)] = []
    var nextWaiterID = 0
    var tickTask: RepeatedTask?
    /// Set by fail(): GOAWAY was queued, so it is not queued twice.
    var goAwayQueued = false
    /// Mirrors the channel's writability; message writers wait while it is false.
    var writable = true
    var writableWaiters: [(id: Int, continuation: CheckedContinuation<Void, any Error>)] = []
    /// What this connection holds of the server's memory budget.
    var budgetHeld = 0
  }

  /// The non-pure side of one open stream.
  struct StreamIO {
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
    var creditWaiter: CheckedContinuation<Void, any Error>?
    /// Server: where a CANCEL or deadline reaches the handler.
    var cancellation: ServerStreamCancellation?
    var deadlineTimer: Scheduled<Void>?

    /// Ends the stream for everyone still using it.
    func end(inboundError: (any Error)?, cancelHandler: Bool, waiterError: any Error) {
      deadlineTimer?.cancel()
      inbound.finish(throwing: inboundError)
      creditWaiter?.resume(throwing: waiterError)
      if cancelHandler { cancellation?.cancel() }
    }
  }

  /// Runs `body` under the lock, then brings this connection's share of the server's memory
  /// budget up to date with what the machine holds.
  private func locked<R: Sendable>(_ body: (inout State) -> R) -> R {
    state.withLock { state in
      let result = body(&state)
      if let budget = governance?.budget {
        // What is allocated for answers on their way to the socket, if more than their bytes.
        let pendingAllocated = state.pending.readableBytes > 0 ? state.pending.capacity : 0
        let rounding = max(0, state.batchesAllocated + pendingAllocated - state.machine.unwrittenBytes)
        let held = state.machine.heldBytes + rounding
        budget.adjust(by: held - state.budgetHeld)
        state.budgetHeld = held
      }
      return result
    }
  }

  var peerSettings: PeerSettings? { state.withLock { $0.machine.peer } }

  /// Whether a client may still open new streams on this connection.
  var acceptsNewStreams: Bool { state.withLock { $0.machine.acceptsNewStreams } }

  // MARK: Writing

  /// Encodes frames into the pending batch and makes sure a flush is scheduled.
  /// Returns false, writing nothing, when the connection is closed.
  @discardableResult
  private func enqueue(_ encode: (inout ByteBuffer) -> Void) -> Bool {
    let (written, schedule) = locked { state -> (Bool, Bool) in
      guard !state.machine.isClosed else { return (false, false) }
      encodePending(&state, encode)
      return (true, scheduleFlush(&state))
    }
    if schedule { channel.eventLoop.execute { self.flushPending() } }
    return written
  }

  /// Encodes into `State.pending` under the caller's lock, counting the bytes as queued.
  private func encodePending(_ state: inout State, _ encode: (inout ByteBuffer) -> Void) {
    let before = state.pending.readableBytes
    encode(&state.pending)
    state.machine.queued(state.pending.readableBytes - before, now: .now())
  }

  /// Schedules a flush if the caller wrote into `State.pending` under its own lock.
  private func scheduleFlush(_ state: inout State) -> Bool {
    defer { state.flushScheduled = true }
    return !state.flushScheduled
  }

  private func flushPending() {
    let batch = state.withLock { state -> ByteBuffer? in
      state.flushScheduled = false
      guard state.pending.readableBytes > 0, !state.machine.isClosed else { return nil }
      let batch = state.pending
      state.pending = allocator.buffer(capacity: 1024)
      state.batchesAllocated += batch.capacity
      return batch
    }
    guard let batch else { return }
    let size = batch.readableBytes
    let allocated = batch.capacity
    let promise = channel.eventLoop.makePromise(of: Void.self)
    promise.futureResult.whenComplete { _ in self.socketTook(size, allocated: allocated) }
    channel.writeAndFlush(batch, promise: promise)
  }

  /// The socket took (or dropped, on close) a batch: writers held back by the backlog may go on.
  private func socketTook(_ bytes: Int, allocated: Int) {
    let waiters = locked { state -> [CheckedContinuation<Void, any Error>] in
      state.batchesAllocated -= allocated
      guard state.machine.written(bytes, now: .now()), state.writable else { return [] }
      defer { state.writableWaiters.removeAll() }
      return state.writableWaiters.map(\.continuation)
    }
    for waiter in waiters { waiter.resume() }
  }

  private func sendControl(
    _ kind: Frame.Kind, streamID: UInt32, _ message: some SwiftProtobuf.Message
  ) {
    let bytes: [UInt8] = (try? message.serializedBytes()) ?? []
    enqueue { Frame.encode(kind: kind, streamID: streamID, bytes: bytes, into: &$0) }
  }

  /// Sends GOAWAY with `code` and closes the connection once it is written.
  func fail(_ code: Pemis_Wire_V1_GoAway.Code, _ reason: String) {
    _ = locked { $0.machine.fail(code, reason) }
    sendGoAwayAndClose(code, reason)
  }

  /// Queues GOAWAY (once) and closes after it is flushed.
  private func sendGoAwayAndClose(_ code: Pemis_Wire_V1_GoAway.Code, _ reason: String) {
    let (first, last) = state.withLock { state -> (Bool, UInt32) in
      defer { state.goAwayQueued = true }
      return (!state.goAwayQueued, state.machine.goAwayLastStreamID)
    }
    guard first else { return }
    let message = "closing connection: \(reason)"
    let metadata: Logger.Metadata = ["wire.goaway.code": "\(code)", "wire.peer": "\(remotePeer)"]
    if code == .idleTimeout {
      logger.debug("\(message)", metadata: metadata)
    } else if let log = governance?.badConnectionLog {
      log.log(logger, .warning, message, metadata: metadata)
    } else {
      logger.warning("\(message)", metadata: metadata)
    }
    var goAway = Pemis_Wire_V1_GoAway()
    goAway.lastStreamID = last
    goAway.code = code
    goAway.reason = reason
    sendControl(.goAway, streamID: 0, goAway)
    close()
  }

  // MARK: Handshake and timers

  /// Client: sends HELLO as soon as the TCP connection is up. Both: arms the timers.
  func channelActive(handshakeTimeout: TimeAmount) {
    if role == .client {
      sendControl(.hello, streamID: 0, helloMessage(min: WireProtocol.version, max: WireProtocol.version))
    }
    let (timeouts, alreadyTicking) = state.withLock { state in
      state.machine.setHandshakeTimeout(handshakeTimeout)
      return (state.machine.timeouts, state.tickTask != nil)
    }
    guard !alreadyTicking else { return }
    let shortest = [timeouts.handshake, timeouts.idle, timeouts.halfClose, timeouts.unreadResponses]
      .compactMap { $0?.nanoseconds }.min() ?? 1_000_000_000
    let period = TimeAmount.nanoseconds(min(max(shortest / 4, 5_000_000), 1_000_000_000))
    let task = channel.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in self.tick() }
    let closed = state.withLock { state in
      state.tickTask = task
      return state.machine.isClosed
    }
    if closed { task.cancel() }
  }

  private func tick() {
    let actions = locked { state -> [(StateMachine.TickAction, StreamIO?)] in
      state.machine.tick(now: .now()).map { action in
        if case .endCall(let id, _, _) = action { return (action, state.io.removeValue(forKey: id)) }
        return (action, nil)
      }
    }
    for (action, io) in actions {
      switch action {
      case .close(let code, let reason):
        sendGoAwayAndClose(code, reason)
      case .endCall(let id, let status, let closeNow):
        logger.info("ending call: \(status.message)", metadata: ["wire.stream": "\(id)"])
        finishServerStream(id, io: io, status: status, trailers: [:], cancelHandler: true, closeNow: closeNow)
      }
    }
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

  // MARK: Reading

  /// Handles one decoded frame. Runs on the channel's event loop.
  func receive(_ event: FrameDecoder.Event) {
    let now = NIODeadline.now()
    let (action, ios, waiters, stream) = locked {
      state -> (StateMachine.ReceiveAction, [StreamIO], [CheckedContinuation<Void, any Error>], ServerStream?) in
      let action: StateMachine.ReceiveAction
      if case .frame(let frame) = event, frame.kind == .message, let budget = governance?.budget,
        budget.wouldExceed(frame.payload.readableBytes), state.machine.refusesMessagesOverBudget
      {
        action = state.machine.receiveMessageOverBudget(frame, budget: budget.limit, now: now)
      } else {
        action = state.machine.receive(event, now: now)
      }
      switch action {
      case .openCall(let id, let descriptor, let metadata, let timeoutMicros):
        return (action, [], [], openServerStream(&state, id: id, descriptor: descriptor, metadata: metadata, timeoutMicros: timeoutMicros))
      case .endCall(let id, _, _), .callEnded(let id, _, _, _), .callCancelled(let id, _, _):
        return (action, state.io.removeValue(forKey: id).map { [$0] } ?? [], [], nil)
      case .deliverMessage(let id), .finishInbound(let id), .responseMetadata(let id, _):
        return (action, state.io[id].map { [$0] } ?? [], [], nil)
      case .creditGranted(let id):
        let waiter = state.io[id]?.creditWaiter
        state.io[id]?.creditWaiter = nil
        return (action, [], waiter.map { [$0] } ?? [], nil)
      case .peerGoingAway(let unprocessed, _, _):
        let waiters = state.slotWaiters.map(\.continuation)
        state.slotWaiters.removeAll()
        return (action, unprocessed.compactMap { state.io.removeValue(forKey: $0) }, waiters, nil)
      case .ignore, .fail, .handshakeComplete, .refuseCall, .pong:
        return (action, [], [], nil)
      }
    }
    switch action {
    case .ignore:
      break
    case .fail(let code, let reason):
      sendGoAwayAndClose(code, reason)
    case .handshakeComplete(let peer, let replyHello):
      if replyHello { sendControl(.hello, streamID: 0, helloMessage(min: peer.version, max: peer.version)) }
      handshake.succeed(peer)
    case .openCall(let id, _, _, let timeoutMicros):
      guard let stream else { return }
      if timeoutMicros > 0 {
        let micros = Int64(min(timeoutMicros, UInt64(Int64.max / 1_000)))
        let timer = channel.eventLoop.scheduleTask(in: .microseconds(micros)) {
          _ = self.endServerStream(
            id, status: Status(code: .deadlineExceeded, message: "deadline of \(timeoutMicros / 1000) ms exceeded"),
            trailers: [:], cancelHandler: true)
        }
        state.withLock { $0.io[id]?.deadlineTimer = timer }
      }
      newStreamsContinuation.yield(stream)
    case .refuseCall(let id, let status):
      logger.debug("refusing call: \(status.message)", metadata: ["wire.stream": "\(id)"])
      sendCallEnd(id, status, [:])
    case .deliverMessage:
      if case .frame(let frame) = event { ios.first?.inbound.yieldMessage(Array(frame.payload.readableBytesView)) }
    case .endCall(let id, let status, let closeNow):
      logger.info("failing call: \(status.message)", metadata: ["wire.stream": "\(id)"])
      switch role {
      case .server:
        finishServerStream(id, io: ios.first, status: status, trailers: [:], cancelHandler: true, closeNow: closeNow)
      case .client:
        var cancel = Pemis_Wire_V1_Cancel()
        cancel.reason = status.message
        sendControl(.cancel, streamID: id, cancel)
        let error = RPCError(code: RPCError.Code(status.code) ?? .internalError, message: status.message)
        ios.first?.end(inboundError: error, cancelHandler: false, waiterError: error)
        if closeNow { close() }
      }
    case .finishInbound:
      ios.first?.inbound.finish()
    case .responseMetadata(_, let metadata):
      if case .client(let c)? = ios.first?.inbound { c.yield(.metadata(metadata)) }
    case .callEnded(_, let status, let trailers, let closeNow):
      if case .client(let c)? = ios.first?.inbound { c.yield(.status(status, trailers)) }
      ios.first?.end(
        inboundError: nil, cancelHandler: false,
        waiterError: RPCError(code: RPCError.Code(status.code) ?? .cancelled, message: "call ended: \(status.message)"))
      if closeNow { close() }
    case .callCancelled(let id, let reason, let closeNow):
      logger.debug("call cancelled by client", metadata: ["wire.stream": "\(id)", "wire.reason": "\(reason)"])
      let error = RPCError(code: .cancelled, message: "client cancelled the call\(reason.isEmpty ? "" : ": \(reason)")")
      ios.first?.end(inboundError: error, cancelHandler: true, waiterError: error)
      if closeNow { close() }
    case .pong(let payload):
      enqueue { Frame.encode(kind: .ping, flags: .ack, streamID: 0, payload: payload, into: &$0) }
    case .creditGranted:
      for waiter in waiters { waiter.resume() }
    case .peerGoingAway(_, let reason, let closeNow):
      logger.debug("peer is going away: \(reason)")
      // Calls still waiting for a slot here were never sent: they go to a new connection.
      for waiter in waiters { waiter.resume(throwing: ConnectionDraining()) }
      let error = RPCError(code: .unavailable, message: "server is going away (\(reason)); the call was not processed")
      for io in ios { io.end(inboundError: error, cancelHandler: true, waiterError: error) }
      if closeNow { close() }
    }
  }

  /// Server: creates the inbound side of an admitted call, under the lock.
  private func openServerStream(
    _ state: inout State, id: UInt32, descriptor: MethodDescriptor, metadata: Metadata, timeoutMicros: UInt64
  ) -> ServerStream {
    var metadata = metadata
    var deadline: ContinuousClock.Instant?
    if timeoutMicros > 0 {
      let micros = min(timeoutMicros, UInt64(Int64.max / 1_000))
      metadata.addString(GRPCTimeout.encode(microseconds: micros), forKey: GRPCTimeout.key)
      deadline = ContinuousClock.now.advanced(by: .microseconds(Int64(micros)))
    }
    let (inbound, continuation) = AsyncThrowingStream<RPCRequestPart<[UInt8]>, any Error>.makeStream()
    continuation.yield(.metadata(metadata))
    let cancellation = ServerStreamCancellation()
    state.io[id] = StreamIO(inbound: .server(continuation), cancellation: cancellation)
    return ServerStream(
      connection: self, id: id, descriptor: descriptor, deadline: deadline,
      inbound: inbound, cancellation: cancellation)
  }

  // MARK: Closing

  /// Called when the channel closed, for whatever reason: ends every stream still open.
  func channelClosed(error: (any Error)?) {
    let closing = locked { state -> (streams: [StreamIO], waiters: [CheckedContinuation<Void, any Error>], tick: RepeatedTask?, handshakeDone: Bool)? in
      guard !state.machine.isClosed else { return nil }
      _ = state.machine.closed()
      let streams = Array(state.io.values)
      state.io.removeAll()
      let waiters = state.slotWaiters.map(\.continuation) + state.writableWaiters.map(\.continuation)
      state.slotWaiters.removeAll()
      state.writableWaiters.removeAll()
      defer { state.tickTask = nil }
      return (streams, waiters, state.tickTask, state.machine.peer != nil)
    }
    guard let closing else { return }
    let reason = error.map { "connection to \(remotePeer) lost: \($0)" } ?? "connection to \(remotePeer) closed"
    let rpcError = RPCError(code: .unavailable, message: reason)
    for stream in closing.streams { stream.end(inboundError: rpcError, cancelHandler: true, waiterError: rpcError) }
    for waiter in closing.waiters { waiter.resume(throwing: rpcError) }
    closing.tick?.cancel()
    if !closing.handshakeDone { handshake.fail(rpcError) }
    newStreamsContinuation.finish()
    if !closing.streams.isEmpty {
      logger.debug("connection closed with \(closing.streams.count) calls open: \(reason)")
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
    let (last, closeNow) = locked { $0.machine.beginDraining() }
    if let last {
      var goAway = Pemis_Wire_V1_GoAway()
      goAway.lastStreamID = last
      goAway.code = .noError
      goAway.reason = reason
      sendControl(.goAway, streamID: 0, goAway)
    }
    if closeNow { close() }
  }

  /// Ends every open stream now (the grace period ran out), then closes.
  func cancelAllStreams(reason: String) {
    let streams = locked { state -> [(UInt32, StreamIO)] in
      let ids = state.machine.removeAllStreams(now: .now())
      defer { state.io.removeAll() }
      return ids.compactMap { id in state.io[id].map { (id, $0) } }
    }
    for (id, stream) in streams {
      if role == .server {
        sendCallEnd(id, Status(code: .unavailable, message: reason), [:])
      }
      let error = RPCError(code: .unavailable, message: reason)
      stream.end(inboundError: error, cancelHandler: true, waiterError: error)
    }
    close()
  }

  /// Takes a stream out of the machine and the table. The second value says the connection
  /// should close (it is draining and this was its last stream); the caller closes *after*
  /// queuing its final frame, so that frame is not lost.
  private func takeStream(_ id: UInt32) -> (StreamIO, Bool)? {
    locked { state -> (StreamIO, Bool)? in
      guard let io = state.io.removeValue(forKey: id) else { return nil }
      return (io, state.machine.removeStream(id, now: .now()))
    }
  }

  // MARK: Flow control

  /// Called as the application takes a message from a stream's inbound sequence: returns credit
  /// to the peer once half the window has been consumed.
  func messageConsumed(_ id: UInt32, size: Int) {
    let grant = locked { $0.machine.messageConsumed(id, size: size) }
    if let grant {
      enqueue { buffer in
        Frame.writeHeader(kind: .windowUpdate, flags: [], streamID: id, length: 4, into: &buffer)
        buffer.writeInteger(grant, endianness: .big)
      }
    }
  }

  /// Sends one MESSAGE frame, waiting for flow-control credit if the peer's window is used up,
  /// and for the socket while this connection's backlog or the server's memory budget is full.
  func sendMessage(_ id: UInt32, _ bytes: [UInt8]) async throws {
    if let peer = peerSettings, bytes.count > peer.maxFrameSize {
      throw RPCError(
        code: .resourceExhausted,
        message: "message of \(bytes.count) bytes exceeds the peer's limit of \(peer.maxFrameSize) bytes")
    }
    // The message counts against the budget from now until it goes: a writer waiting for a
    // client that does not read holds it in memory all that time.
    let size = bytes.count + Frame.headerSize
    locked { $0.machine.writerWaiting(size) }
    defer { locked { $0.machine.writerDone(size) } }
    while true {
      // Its own bytes are counted already: over budget means more than the limit is held.
      let overBudget = governance?.budget.wouldExceed(0) ?? false
      let (step, schedule) = locked { state -> (StateMachine.SendStep, Bool) in
        guard state.io[id] != nil else { return (.gone, false) }
        let step = state.machine.sendMessage(id, size: size, writable: state.writable, overBudget: overBudget)
        guard step == .send else { return (step, false) }
        encodePending(&state) { Frame.encode(kind: .message, streamID: id, bytes: bytes, into: &$0) }
        return (.send, scheduleFlush(&state))
      }
      switch step {
      case .send:
        if schedule { channel.eventLoop.execute { self.flushPending() } }
        return
      case .gone:
        throw RPCError(code: .cancelled, message: "the call has already ended")
      case .waitForSocket:
        try await waitUntilWritable(size: size, drained: false)
      case .waitForDrain:
        // Woken by this connection's own writes, never by polling the budget.
        try await waitUntilWritable(size: size, drained: true)
      case .waitForCredit:
        try await withTaskCancellationHandler {
          try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let resumeNow = state.withLock { state -> Bool in
              guard state.io[id] != nil, let stream = state.machine.streams[id] else { return true }
              if stream.sendCredits > 0 || Task.isCancelled { return true }
              state.io[id]?.creditWaiter = continuation
              return false
            }
            if resumeNow { continuation.resume() }
          }
        } onCancel: {
          let waiter = self.state.withLock { state -> CheckedContinuation<Void, any Error>? in
            defer { state.io[id]?.creditWaiter = nil }
            return state.io[id]?.creditWaiter
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

  /// Waits until the socket has taken enough for `size` more bytes (`drained`: everything
  /// queued), so a peer that does not read cannot make us buffer messages without bound. Woken
  /// by this connection's writes and writability, never by polling.
  private func waitUntilWritable(size: Int, drained: Bool) async throws {
    let waiterID = state.withLock { state in
      defer { state.nextWaiterID += 1 }
      return state.nextWaiterID
    }
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
        let now = state.withLock { state -> Result<Bool, any Error> in
          if state.machine.isClosed { return .failure(RPCError(code: .unavailable, message: "connection closed")) }
          if Task.isCancelled { return .failure(CancellationError()) }
          if state.machine.mayRetryWrite(size: size, writable: state.writable, drained: drained) { return .success(true) }
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
    state.withLock { $0.machine.handlerFinished() }
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
    let open = state.withLock { $0.io[id] != nil }
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
    guard let (io, closeNow) = takeStream(id) else { return false }
    finishServerStream(id, io: io, status: status, trailers: trailers, cancelHandler: cancelHandler, closeNow: closeNow)
    return true
  }

  /// CALL_END for a stream already taken out of the table, then the end of its tasks.
  private func finishServerStream(
    _ id: UInt32, io: StreamIO?, status: Status, trailers: Metadata, cancelHandler: Bool, closeNow: Bool
  ) {
    sendCallEnd(id, status, trailers)
    if closeNow { close() }
    let error = RPCError(code: status.code == .ok ? .cancelled : RPCError.Code(status.code) ?? .unknown, message: status.message)
    io?.end(inboundError: cancelHandler ? error : nil, cancelHandler: cancelHandler, waiterError: error)
  }
}

// MARK: - Client side

extension WireConnection {
  /// Waits for a slot under the server's concurrent-stream limit.
  func acquireSlot() async throws {
    let granted = try state.withLock { state -> Bool in
      if state.machine.isDraining { throw ConnectionDraining() }
      let limit = state.machine.peer?.maxConcurrentStreams ?? Int.max
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
          if state.machine.isDraining { return .failure(ConnectionDraining()) }
          if Task.isCancelled { return .failure(CancellationError()) }
          let limit = state.machine.peer?.maxConcurrentStreams ?? Int.max
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
      let limit = state.machine.peer?.maxConcurrentStreams ?? Int.max
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
    let remotePeer = self.remotePeer
    let opened = locked { state -> Result<(UInt32, Bool), any Error> in
      var machine = state.machine
      let id: UInt32
      switch machine.openClientStream(now: .now()) {
      case .success(let opened): id = opened
      case .failure(let error):
        return .failure(
          state.machine.goAwayReceived == nil
            ? RPCError(code: .unavailable, message: "connection to \(remotePeer) is closed") : error)
      }
      // The call records its id under this same lock, or learns it was cancelled meanwhile.
      guard claim(id) else { return .failure(CancellationError()) }
      state.machine = machine
      state.io[id] = StreamIO(inbound: .client(inbound))
      encodePending(&state) { Frame.encode(kind: .callStart, streamID: id, bytes: bytes, into: &$0) }
      return .success((id, scheduleFlush(&state)))
    }
    let (id, schedule) = try opened.get()
    if schedule { channel.eventLoop.execute { self.flushPending() } }
    return id
  }

  func sendCloseSend(_ id: UInt32) {
    let open = state.withLock { $0.io[id] != nil }
    if open { enqueue { Frame.writeHeader(kind: .closeSend, flags: [], streamID: id, length: 0, into: &$0) } }
  }

  /// Abandons a client stream: tells the server (CANCEL) and ends the local inbound sequence.
  /// Returns false if the stream had already ended.
  @discardableResult
  func cancelClientStream(_ id: UInt32, error: any Error, reason: String) -> Bool {
    guard let (io, closeNow) = takeStream(id) else { return false }
    var cancel = Pemis_Wire_V1_Cancel()
    cancel.reason = reason
    sendControl(.cancel, streamID: id, cancel)
    io.end(inboundError: error, cancelHandler: false, waiterError: error)
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

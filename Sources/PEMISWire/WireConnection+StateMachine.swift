internal import GRPCCore
internal import NIOCore
internal import SwiftProtobuf

extension WireConnection {
  /// The protocol of one connection (docs/PROTOCOL.md) without I/O: frames, sends and timer ticks
  /// go in with the current time, and what the connection must do comes out as an action.
  ///
  /// ``WireConnection`` holds one under its lock and only performs the actions (writes frames,
  /// resumes tasks, closes the channel), so every rule can be tested without a socket
  /// (`WireStateMachineTests`), in the style of grpc-swift-nio-transport's
  /// `ServerConnectionManagementHandler.StateMachine`.
  struct StateMachine {
    /// The timeouts ``tick(now:)`` enforces.
    struct Timeouts: Sendable {
      /// A connection that has not completed HELLO within this time is closed.
      var handshake: TimeAmount
      /// Server: a connection on which no call makes progress for this long is closed.
      var idle: TimeAmount?
      /// Server: a call whose client has not sent CLOSE_SEND this long after CALL_START is ended.
      var halfClose: TimeAmount?
      /// Server: a connection whose answers sit unwritten (the client does not read) this long is
      /// closed.
      var unreadResponses: TimeAmount?
    }

    /// Protocol state of one open stream.
    struct Stream: Equatable {
      /// MESSAGE frames this side may still send before the peer grants more.
      var sendCredits: Int
      /// MESSAGE frames the peer may still send before this side grants more.
      var receiveAllowance: Int
      /// Messages the application consumed since the last WINDOW_UPDATE this side sent.
      var consumedSinceGrant = 0
      /// Bytes of messages delivered and not yet consumed.
      var bufferedBytes = 0
      /// Server: bytes of the message the handler took last, which it still holds (a unary
      /// handler holds its request until it answers).
      var handledBytes = 0
      /// The peer will send no more messages (CLOSE_SEND received).
      var remoteClosed = false
      /// When the stream opened, for the half-close limit.
      var openedAt: NIODeadline
      /// Server: the method takes exactly one request message (unary, server streaming).
      var singleRequest = false
      /// Server: request messages received.
      var messagesReceived = 0
    }

    enum Phase: Equatable {
      case awaitingHello
      case active
      /// GOAWAY (or a fatal error) is on its way; the rest of what the peer sends is ignored.
      case failing
      case closed
    }

    let role: Role
    let limits: WireLimits
    private(set) var timeouts: Timeouts
    /// Server: unread request bytes one connection may hold before a call receiving more fails.
    let maxBufferedInboundBytes: Int
    /// Server: unwritten response bytes above which writers wait (a single message always fits
    /// when nothing is queued).
    let maxUnwrittenBytes: Int
    /// Server: the server's methods by path, so descriptors carry their call type.
    let methods: [String: MethodDescriptor]

    private(set) var phase: Phase = .awaitingHello
    private(set) var peer: PeerSettings?
    private(set) var streams: [UInt32: Stream] = [:]
    /// Server: the highest stream id a client opened. Client: the last id assigned.
    private(set) var highestStreamID: UInt32 = 0
    /// Set once this side sent GOAWAY: the highest stream id it still serves.
    private(set) var goAwaySent: UInt32?
    /// Set once the peer sent GOAWAY.
    private(set) var goAwayReceived: UInt32?
    /// Server: bytes of request messages received and not yet taken by their handlers.
    private(set) var bufferedInboundBytes = 0
    /// Server: bytes of the request messages handlers took and still hold, one (the last) per
    /// open stream: a call waiting to answer a client that does not read still costs them.
    private(set) var handledInboundBytes = 0
    /// Bytes of messages writers are waiting to send (credit, socket or budget): the writer
    /// holds them in memory until they go.
    private(set) var waitingOutboundBytes = 0
    /// Server: handler tasks started and not yet returned (a cancelled call's handler may still run).
    private(set) var runningHandlers = 0
    /// Bytes handed to the socket layer and not yet written, and when it last took some.
    private(set) var unwrittenBytes = 0
    /// What this connection holds in memory of requests and responses, for the server's
    /// budget: unread and handled requests, answers waiting to go and answers unwritten.
    var heldBytes: Int { bufferedInboundBytes + handledInboundBytes + waitingOutboundBytes + unwrittenBytes }
    private(set) var lastWriteProgress: NIODeadline
    /// When the connection opened, for the HELLO timeout.
    let openedAt: NIODeadline
    /// The last time a call made progress: a frame from the peer on a stream, a stream ending,
    /// the socket taking bytes. Calls waiting for their client do not hold off the idle timeout.
    private(set) var lastProgress: NIODeadline

    init(
      role: Role, limits: WireLimits, timeouts: Timeouts, now: NIODeadline,
      maxBufferedInboundBytes: Int? = nil, maxUnwrittenBytes: Int = 1024 * 1024,
      methods: [String: MethodDescriptor] = [:]
    ) {
      self.role = role
      self.limits = limits
      self.timeouts = timeouts
      self.maxBufferedInboundBytes = maxBufferedInboundBytes ?? max(16 * 1024 * 1024, 4 * limits.maxFrameSize)
      self.maxUnwrittenBytes = maxUnwrittenBytes
      self.methods = methods
      self.openedAt = now
      self.lastProgress = now
      self.lastWriteProgress = now
    }

    /// The handshake timeout is known once the channel is up.
    mutating func setHandshakeTimeout(_ timeout: TimeAmount) { timeouts.handshake = timeout }

    /// The most MESSAGE credit this side keeps per stream, whatever window the peer announces.
    static let maxSendWindow = 65_536

    var isDraining: Bool { goAwaySent != nil || goAwayReceived != nil || phase == .closed }
    var isClosed: Bool { phase == .closed }
    /// Whether frames from the peer are still acted on.
    var isReading: Bool { phase == .awaitingHello || phase == .active }
    /// Whether a client may still open new streams on this connection.
    var acceptsNewStreams: Bool { peer != nil && !isDraining && phase == .active }

    // MARK: Receiving

    /// What the connection does with one frame from the peer.
    enum ReceiveAction: Equatable {
      case ignore
      /// Sends GOAWAY with the code and reason, then closes.
      case fail(Pemis_Wire_V1_GoAway.Code, String)
      /// The handshake is done; a server answers with its HELLO.
      case handshakeComplete(PeerSettings, replyHello: Bool)
      /// Server: a call was admitted; run its handler.
      case openCall(id: UInt32, descriptor: MethodDescriptor, metadata: Metadata, timeoutMicros: UInt64)
      /// Server: answers a CALL_START with CALL_END and never opens the stream.
      case refuseCall(id: UInt32, Status)
      /// Hands the frame's payload to the stream's inbound sequence.
      case deliverMessage(id: UInt32)
      /// Server: ends the call with CALL_END and cancels its handler. Client: cancels the stream
      /// (CANCEL) and fails the call with the status.
      case endCall(id: UInt32, Status, closeConnection: Bool)
      /// The peer sends no more messages on the stream.
      case finishInbound(id: UInt32)
      /// Client: the server's initial metadata.
      case responseMetadata(id: UInt32, Metadata)
      /// Client: the call ended with this status.
      case callEnded(id: UInt32, Status, Metadata, closeConnection: Bool)
      /// Server: the client abandoned the call.
      case callCancelled(id: UInt32, reason: String, closeConnection: Bool)
      /// Answers a PING with these 8 bytes and ACK.
      case pong(ByteBuffer)
      /// A writer waiting for credit on the stream may go on.
      case creditGranted(id: UInt32)
      /// The peer goes away: waiting calls go elsewhere, `unprocessed` streams end UNAVAILABLE.
      case peerGoingAway(unprocessed: [UInt32], reason: String, closeConnection: Bool)
    }

    /// Takes one decoded frame (or an oversized header) from the peer.
    mutating func receive(_ event: FrameDecoder.Event, now: NIODeadline) -> ReceiveAction {
      guard isReading else { return .ignore }
      switch event {
      case .oversized(let kind, _, let streamID, let length):
        return receiveOversized(kind: kind, streamID: streamID, length: length, now: now)
      case .frame(let frame):
        guard peer != nil else {
          if frame.kind == .hello { return receiveHello(frame, now: now) }
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
        case .hello: return fail(.protocolError, "HELLO sent twice")
        case .callStart:
          return role == .server ? receiveCallStart(frame, now: now) : fail(.protocolError, "CALL_START sent by the server")
        case .responseStart:
          return role == .client ? receiveResponseStart(frame, now: now) : fail(.protocolError, "RESPONSE_START sent by a client")
        case .message: return receiveMessage(frame, now: now)
        case .closeSend:
          return role == .server ? receiveCloseSend(frame, now: now) : fail(.protocolError, "CLOSE_SEND sent by the server")
        case .callEnd:
          return role == .client ? receiveCallEnd(frame, now: now) : fail(.protocolError, "CALL_END sent by a client")
        case .cancel:
          return role == .server ? receiveCancel(frame, now: now) : fail(.protocolError, "CANCEL sent by the server")
        case .ping: return receivePing(frame)
        case .goAway: return receiveGoAway(frame, now: now)
        case .windowUpdate: return receiveWindowUpdate(frame, now: now)
        default: return .ignore  // Unknown kinds are ignored so later versions can add them.
        }
      }
    }

    /// Marks the connection failing and returns the action that sends GOAWAY.
    mutating func fail(_ code: Pemis_Wire_V1_GoAway.Code, _ reason: String) -> ReceiveAction {
      guard isReading else { return .ignore }
      phase = .failing
      return .fail(code, reason)
    }

    /// The GOAWAY's last stream id: only a server accepts streams; a client's GOAWAY carries 0.
    var goAwayLastStreamID: UInt32 { role == .server ? highestStreamID : 0 }

    private mutating func receiveOversized(kind: Frame.Kind, streamID: UInt32, length: Int, now: NIODeadline) -> ReceiveAction {
      let reason = "\(kind) frame of \(length) bytes exceeds the limit of \(limits.maxFrameSize) bytes"
      guard peer != nil else { return fail(.frameTooLarge, reason) }
      let known = streams[streamID] != nil
      switch (role, kind) {
      case (_, .message) where known:
        let closeNow = removeStream(streamID, now: now)
        return .endCall(id: streamID, Status(code: .resourceExhausted, message: reason), closeConnection: closeNow)
      case (.server, .callStart) where streamID > highestStreamID && streamID % 2 == 1:
        highestStreamID = streamID
        lastProgress = now
        return .refuseCall(id: streamID, Status(code: .resourceExhausted, message: reason))
      default:
        return fail(.frameTooLarge, reason)
      }
    }

    private mutating func receiveHello(_ frame: Frame, now: NIODeadline) -> ReceiveAction {
      guard frame.streamID == 0,
        let hello = try? Pemis_Wire_V1_Hello(serializedBytes: Array(frame.payload.readableBytesView))
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
      let settings = PeerSettings(
        version: version,
        maxFrameSize: Int(hello.maxFrameSize),
        initialStreamWindow: min(Int(hello.initialStreamWindow), Self.maxSendWindow),
        maxConcurrentStreams: hello.maxConcurrentStreams == 0 ? Int.max : Int(hello.maxConcurrentStreams),
        agent: hello.agent)
      peer = settings
      phase = .active
      lastProgress = now
      return .handshakeComplete(settings, replyHello: role == .server)
    }

    private mutating func receiveCallStart(_ frame: Frame, now: NIODeadline) -> ReceiveAction {
      let id = frame.streamID
      guard id % 2 == 1, id > highestStreamID else {
        return fail(.protocolError, "CALL_START on stream \(id): client streams must be odd and increasing (last was \(highestStreamID))")
      }
      guard let start = try? Pemis_Wire_V1_CallStart(serializedBytes: Array(frame.payload.readableBytesView)) else {
        return fail(.protocolError, "CALL_START on stream \(id) does not hold a CallStart message")
      }
      // Ids up to this one are used up, whether the call is admitted or not.
      highestStreamID = id
      lastProgress = now
      // The drain race: a CALL_START that crossed our GOAWAY is above the id it promised to serve.
      if let promised = goAwaySent, id > promised {
        return .refuseCall(id: id, Status(code: .unavailable, message: "server is shutting down; call not started"))
      }
      if goAwayReceived != nil {
        return .refuseCall(id: id, Status(code: .unavailable, message: "CALL_START after the client's own GOAWAY; call not started"))
      }
      guard let descriptor = methods[start.method] ?? MethodDescriptor(path: start.method) else {
        return .refuseCall(
          id: id,
          Status(code: .unimplemented, message: "malformed method path '\(WireMetadataRules.printable(start.method))': expected /package.Service/Method"))
      }
      if let violation = WireMetadataRules.violation(in: start.metadata) {
        return .refuseCall(id: id, Status(code: .invalidArgument, message: violation))
      }
      // Handlers of cancelled calls may still be winding down; they count too, within reason.
      guard streams.count < limits.maxConcurrentStreams, runningHandlers < 2 * limits.maxConcurrentStreams,
        let peer
      else {
        return .refuseCall(
          id: id,
          Status(code: .resourceExhausted, message: "too many concurrent calls on this connection (limit \(limits.maxConcurrentStreams))"))
      }
      runningHandlers += 1
      streams[id] = Stream(
        sendCredits: peer.initialStreamWindow, receiveAllowance: limits.initialStreamWindow, openedAt: now,
        singleRequest: descriptor.type.map { !$0.isRequestStreaming } ?? false)
      var metadata = Metadata(wireEntries: start.metadata)
      metadata.removeAllValues(forKey: GRPCTimeout.key)
      return .openCall(id: id, descriptor: descriptor, metadata: metadata, timeoutMicros: start.timeoutMicros)
    }

    /// A frame for a stream that is not open: fine if the id was used (the stream ended, was
    /// refused or skipped), a violation if it was never opened.
    private mutating func unknownStream(_ frame: Frame) -> ReceiveAction {
      if frame.streamID <= highestStreamID { return .ignore }
      return fail(.protocolError, "\(frame.kind) on stream \(frame.streamID), which was never opened")
    }

    private mutating func receiveResponseStart(_ frame: Frame, now: NIODeadline) -> ReceiveAction {
      guard let start = try? Pemis_Wire_V1_ResponseStart(serializedBytes: Array(frame.payload.readableBytesView)) else {
        return fail(.protocolError, "RESPONSE_START on stream \(frame.streamID) does not hold a ResponseStart message")
      }
      guard streams[frame.streamID] != nil else { return unknownStream(frame) }
      if let violation = WireMetadataRules.violation(in: start.metadata) {
        let closeNow = removeStream(frame.streamID, now: now)
        return .endCall(
          id: frame.streamID, Status(code: .internalError, message: "server sent invalid metadata: \(violation)"),
          closeConnection: closeNow)
      }
      return .responseMetadata(id: frame.streamID, Metadata(wireEntries: start.metadata))
    }

    private mutating func receiveMessage(_ frame: Frame, now: NIODeadline) -> ReceiveAction {
      let id = frame.streamID
      let size = frame.payload.readableBytes
      guard var stream = streams[id] else { return unknownStream(frame) }
      if stream.remoteClosed { return fail(.protocolError, "MESSAGE on stream \(id) after CLOSE_SEND") }
      if stream.receiveAllowance <= 0 {
        return fail(.protocolError, "MESSAGE on stream \(id) beyond the flow-control window")
      }
      stream.receiveAllowance -= 1
      lastProgress = now
      if stream.singleRequest && stream.messagesReceived >= 1 {
        let closeNow = removeStream(id, now: now)
        return .endCall(
          id: id,
          Status(code: .invalidArgument, message: "\(Self.single) got a second request message on stream \(id)"),
          closeConnection: closeNow)
      }
      stream.messagesReceived += 1
      if role == .server && bufferedInboundBytes + size > maxBufferedInboundBytes {
        let closeNow = removeStream(id, now: now)
        return .endCall(
          id: id,
          Status(code: .resourceExhausted, message: "unread request data on this connection would exceed \(maxBufferedInboundBytes) bytes"),
          closeConnection: closeNow)
      }
      stream.bufferedBytes += size
      bufferedInboundBytes += size
      streams[id] = stream
      return .deliverMessage(id: id)
    }

    /// A MESSAGE whose bytes the server-wide budget could not take: the call fails, the
    /// connection goes on.
    mutating func receiveMessageOverBudget(_ frame: Frame, budget: Int, now: NIODeadline) -> ReceiveAction {
      guard isReading, peer != nil, streams[frame.streamID] != nil else { return receive(.frame(frame), now: now) }
      let closeNow = removeStream(frame.streamID, now: now)
      return .endCall(
        id: frame.streamID,
        Status(code: .resourceExhausted, message: "server is short of memory for requests (budget \(budget) bytes); try again later"),
        closeConnection: closeNow)
    }

    static let single = "a unary or server-streaming call takes exactly one request message:"

    private mutating func receiveCloseSend(_ frame: Frame, now: NIODeadline) -> ReceiveAction {
      guard streams[frame.streamID] != nil else { return unknownStream(frame) }
      if streams[frame.streamID]!.remoteClosed { return fail(.protocolError, "CLOSE_SEND twice on stream \(frame.streamID)") }
      if streams[frame.streamID]!.singleRequest && streams[frame.streamID]!.messagesReceived == 0 {
        let closeNow = removeStream(frame.streamID, now: now)
        return .endCall(
          id: frame.streamID,
          Status(code: .invalidArgument, message: "\(Self.single) got CLOSE_SEND before its request message on stream \(frame.streamID)"),
          closeConnection: closeNow)
      }
      streams[frame.streamID]!.remoteClosed = true
      lastProgress = now
      return .finishInbound(id: frame.streamID)
    }

    private mutating func receiveCallEnd(_ frame: Frame, now: NIODeadline) -> ReceiveAction {
      guard let end = try? Pemis_Wire_V1_CallEnd(serializedBytes: Array(frame.payload.readableBytesView)) else {
        return fail(.protocolError, "CALL_END on stream \(frame.streamID) does not hold a CallEnd message")
      }
      guard streams[frame.streamID] != nil else { return unknownStream(frame) }
      let closeNow = removeStream(frame.streamID, now: now)
      if let violation = WireMetadataRules.violation(in: end.trailers) {
        return .callEnded(
          id: frame.streamID, Status(code: .internalError, message: "server sent invalid trailers: \(violation)"), [:],
          closeConnection: closeNow)
      }
      let code = Status.Code(rawValue: Int(end.code)) ?? .unknown
      return .callEnded(
        id: frame.streamID, Status(code: code, message: end.message), Metadata(wireEntries: end.trailers),
        closeConnection: closeNow)
    }

    private mutating func receiveCancel(_ frame: Frame, now: NIODeadline) -> ReceiveAction {
      let reason = (try? Pemis_Wire_V1_Cancel(serializedBytes: Array(frame.payload.readableBytesView)))?.reason ?? ""
      guard streams[frame.streamID] != nil else { return unknownStream(frame) }
      let closeNow = removeStream(frame.streamID, now: now)
      return .callCancelled(id: frame.streamID, reason: reason, closeConnection: closeNow)
    }

    private mutating func receivePing(_ frame: Frame) -> ReceiveAction {
      guard frame.payload.readableBytes == 8 else {
        return fail(.protocolError, "PING must be on stream 0 with an 8-byte payload")
      }
      return frame.flags.contains(.ack) ? .ignore : .pong(frame.payload)
    }

    private mutating func receiveGoAway(_ frame: Frame, now: NIODeadline) -> ReceiveAction {
      guard let goAway = try? Pemis_Wire_V1_GoAway(serializedBytes: Array(frame.payload.readableBytesView)) else {
        return fail(.protocolError, "GOAWAY does not hold a GoAway message")
      }
      goAwayReceived = goAway.lastStreamID
      // A client's GOAWAY only says it opens no more calls: its open calls run to the end.
      let unprocessed = role == .server ? [] : streams.keys.filter { $0 > goAway.lastStreamID }.sorted()
      for id in unprocessed { _ = removeStream(id, now: now) }
      return .peerGoingAway(unprocessed: unprocessed, reason: goAway.reason, closeConnection: streams.isEmpty)
    }

    private mutating func receiveWindowUpdate(_ frame: Frame, now: NIODeadline) -> ReceiveAction {
      guard frame.payload.readableBytes == 4,
        let increment = frame.payload.getInteger(at: frame.payload.readerIndex, endianness: .big, as: UInt32.self),
        increment > 0
      else { return fail(.protocolError, "WINDOW_UPDATE must carry a 4-byte increment above 0") }
      if frame.streamID == 0 { return .ignore }  // reserved for a connection window of a later version
      guard var stream = streams[frame.streamID] else { return unknownStream(frame) }
      guard stream.sendCredits + Int(increment) <= Int(Int32.max) else {
        return fail(.protocolError, "WINDOW_UPDATE on stream \(frame.streamID) raises the window above 2^31-1")
      }
      stream.sendCredits += Int(increment)
      streams[frame.streamID] = stream
      lastProgress = now
      return .creditGranted(id: frame.streamID)
    }

    // MARK: Streams, from the application's side

    /// Takes a stream out of the table. Returns true when the connection should close now (it is
    /// draining and this was its last stream); the caller closes after queuing its final frame.
    mutating func removeStream(_ id: UInt32, now: NIODeadline) -> Bool {
      guard let stream = streams.removeValue(forKey: id) else { return false }
      bufferedInboundBytes -= stream.bufferedBytes
      handledInboundBytes -= stream.handledBytes
      lastProgress = now
      return streams.isEmpty && isDraining && phase != .closed
    }

    /// Server: a handler task returned.
    mutating func handlerFinished() { runningHandlers -= 1 }

    /// The application took a message of `size` bytes from a stream: returns the credit to grant
    /// the peer, once half the window has been consumed.
    mutating func messageConsumed(_ id: UInt32, size: Int) -> UInt32? {
      guard var stream = streams[id] else { return nil }
      stream.bufferedBytes -= size
      bufferedInboundBytes -= size
      if role == .server {
        handledInboundBytes += size - stream.handledBytes
        stream.handledBytes = size
      }
      defer { streams[id] = stream }
      guard !stream.remoteClosed else { return nil }
      stream.consumedSinceGrant += 1
      guard stream.consumedSinceGrant * 2 >= limits.initialStreamWindow else { return nil }
      let grant = UInt32(stream.consumedSinceGrant)
      stream.receiveAllowance += stream.consumedSinceGrant
      stream.consumedSinceGrant = 0
      return grant
    }

    enum SendStep: Equatable {
      /// Write the MESSAGE now; its credit is taken.
      case send
      /// No credit on the stream: wait for a WINDOW_UPDATE.
      case waitForCredit
      /// The socket is backed up: wait until it takes data.
      case waitForSocket
      /// The server's memory budget is spent and this connection still has answers unwritten:
      /// wait until the socket has taken all of them (``mayRetryWrite(size:writable:drained:)``).
      case waitForDrain
      /// The stream ended.
      case gone
    }

    /// Whether a MESSAGE of `size` bytes may go now on stream `id`.
    ///
    /// `overBudget`: the server-wide memory budget cannot take the message. Then a connection
    /// with nothing unwritten still sends it, and one whose earlier answers are still unwritten
    /// waits until the socket has taken them: clients that never read fill only their own
    /// connections, and a client that reads its answers is never held up by them.
    mutating func sendMessage(_ id: UInt32, size: Int, writable: Bool, overBudget: Bool = false) -> SendStep {
      guard phase != .closed, var stream = streams[id] else { return .gone }
      if overBudget && unwrittenBytes > 0 { return .waitForDrain }
      guard writable, unwrittenBytes == 0 || unwrittenBytes + size <= maxUnwrittenBytes else { return .waitForSocket }
      guard stream.sendCredits > 0 else { return .waitForCredit }
      stream.sendCredits -= 1
      streams[id] = stream
      return .send
    }

    /// Whether a writer of `size` bytes told to wait for the socket (or, `drained`, for the drain)
    /// may ask ``sendMessage(_:size:writable:overBudget:)`` again. Exactly the condition that
    /// told it to wait, turned round: a writer woken early waits again instead of spinning.
    func mayRetryWrite(size: Int, writable: Bool, drained: Bool) -> Bool {
      guard writable else { return false }
      if drained { return unwrittenBytes == 0 }
      return unwrittenBytes == 0 || unwrittenBytes + size <= maxUnwrittenBytes
    }

    /// Server: whether a request MESSAGE the server-wide budget cannot take fails its call. A
    /// connection that holds no bytes of the budget (nothing unread, nothing unwritten) still gets
    /// its message through, so clients that hold the budget cannot shut out the others.
    var refusesMessagesOverBudget: Bool { heldBytes > 0 }

    /// A writer holds a message of `size` bytes until it goes (or its call ends): counted from
    /// the first try, so answers waiting for a client that does not read count against the
    /// budget. Each ``writerWaiting(_:)`` is matched by one ``writerDone(_:)``.
    mutating func writerWaiting(_ size: Int) { waitingOutboundBytes += size }
    mutating func writerDone(_ size: Int) { waitingOutboundBytes -= size }

    /// Client: opens the next stream id, or says why not.
    mutating func openClientStream(now: NIODeadline) -> Result<UInt32, RPCError> {
      guard phase == .active, let peer else {
        return .failure(RPCError(code: .unavailable, message: "connection is closed"))
      }
      if goAwayReceived != nil {
        return .failure(RPCError(code: .unavailable, message: "server is going away; the call was not started"))
      }
      let id = highestStreamID == 0 ? 1 : highestStreamID + 2
      highestStreamID = id
      streams[id] = Stream(sendCredits: peer.initialStreamWindow, receiveAllowance: limits.initialStreamWindow, openedAt: now)
      return .success(id)
    }

    // MARK: Writes

    /// Bytes were queued for the socket.
    mutating func queued(_ bytes: Int, now: NIODeadline) {
      if unwrittenBytes == 0 { lastWriteProgress = now }
      unwrittenBytes += bytes
    }

    /// The socket took `bytes` of what was queued. Returns true when writers waiting for the
    /// socket may go on.
    mutating func written(_ bytes: Int, now: NIODeadline) -> Bool {
      unwrittenBytes = max(0, unwrittenBytes - bytes)
      lastWriteProgress = now
      if !streams.isEmpty { lastProgress = now }
      return unwrittenBytes < maxUnwrittenBytes
    }

    // MARK: Draining and closing

    /// Begins a graceful close: returns the last stream id to put in GOAWAY, or nil if GOAWAY was
    /// already sent; and whether to close at once (nothing open).
    mutating func beginDraining() -> (goAwayLastStreamID: UInt32?, closeNow: Bool) {
      guard peer != nil, phase == .active else { return (nil, true) }
      let first = goAwaySent == nil
      if first { goAwaySent = highestStreamID }
      return (first ? goAwayLastStreamID : nil, streams.isEmpty)
    }

    /// The channel closed: every stream is over. Returns the ids that were still open.
    mutating func closed() -> [UInt32] {
      guard phase != .closed else { return [] }
      phase = .closed
      let open = streams.keys.sorted()
      streams.removeAll()
      bufferedInboundBytes = 0
      handledInboundBytes = 0
      return open
    }

    /// Ends every stream now (the grace period ran out). Returns their ids.
    mutating func removeAllStreams(now: NIODeadline) -> [UInt32] {
      let open = streams.keys.sorted()
      streams.removeAll()
      bufferedInboundBytes = 0
      handledInboundBytes = 0
      lastProgress = now
      return open
    }

    // MARK: Timers

    enum TickAction: Equatable {
      /// Sends GOAWAY with the code and reason, then closes.
      case close(Pemis_Wire_V1_GoAway.Code, String)
      /// Ends a call with a status (server: CALL_END, cancels the handler).
      case endCall(id: UInt32, Status, closeConnection: Bool)
    }

    /// Checks the timeouts at `now`.
    mutating func tick(now: NIODeadline) -> [TickAction] {
      guard isReading else { return [] }
      guard peer != nil else {
        if now - openedAt >= timeouts.handshake {
          phase = .failing
          return [.close(.protocolError, "no HELLO within \(timeouts.handshake.nanoseconds / 1_000_000) ms")]
        }
        return []
      }
      guard role == .server else { return [] }
      if let limit = timeouts.unreadResponses, unwrittenBytes > 0, now - lastWriteProgress >= limit {
        phase = .failing
        return [.close(
          .protocolError,
          "client has not read its answers for \(Self.describe(limit)) (\(unwrittenBytes) bytes waiting)")]
      }
      var actions: [TickAction] = []
      if let limit = timeouts.halfClose {
        for (id, stream) in streams.sorted(by: { $0.key < $1.key }) where !stream.remoteClosed && now - stream.openedAt >= limit {
          let closeNow = removeStream(id, now: now)
          actions.append(.endCall(
            id: id,
            Status(code: .deadlineExceeded, message: "the request was not complete (no CLOSE_SEND) within \(Self.describe(limit)) of CALL_START"),
            closeConnection: closeNow))
        }
      }
      if let idle = timeouts.idle, phase == .active, goAwaySent == nil,
        streams.values.allSatisfy({ !$0.remoteClosed }), now - lastProgress >= idle
      {
        // No call is waiting for the server: only for a client that sends nothing.
        goAwaySent = highestStreamID
        phase = .failing
        actions.append(.close(.idleTimeout, "no call made progress for \(Self.describe(idle))"))
      }
      return actions
    }

    static func describe(_ amount: TimeAmount) -> String {
      let ms = amount.nanoseconds / 1_000_000
      return ms % 1000 == 0 ? "\(ms / 1000) s" : "\(ms) ms"
    }
  }
}

// MARK: - Metadata rules

/// gRPC's rules for metadata, checked before anything reaches GRPCCore (whose `Metadata` asserts
/// that binary values have "-bin" keys, in debug builds).
enum WireMetadataRules {
  /// Longest key accepted, in bytes.
  static let maxKeyLength = 256

  /// Why `entries` break the rules, naming the key and the rule; nil when they are fine.
  static func violation(in entries: [Pemis_Wire_V1_MetadataEntry]) -> String? {
    for entry in entries {
      if let rule = violation(entry) { return "metadata key '\(printable(entry.key))': \(rule)" }
    }
    return nil
  }

  private static func violation(_ entry: Pemis_Wire_V1_MetadataEntry) -> String? {
    let key = entry.key.utf8
    if key.isEmpty { return "a key must not be empty" }
    if key.count > maxKeyLength { return "a key must be at most \(maxKeyLength) characters" }
    let allowed = key.allSatisfy { byte in
      (0x61...0x7A).contains(byte) || (0x30...0x39).contains(byte) || byte == 0x2D || byte == 0x5F || byte == 0x2E
    }
    if !allowed { return "a key may hold only lower-case letters a-z, digits and - _ ." }
    let binaryKey = entry.key.hasSuffix("-bin")
    switch entry.value {
    case .binary where !binaryKey:
      return "a binary value needs a key ending in -bin"
    case .text where binaryKey:
      return "a key ending in -bin carries a binary value, not text"
    case .text(let text):
      if !text.utf8.allSatisfy({ (0x20...0x7E).contains($0) }) {
        return "a text value may hold only printable ASCII (space to ~); send other bytes under a -bin key"
      }
    case .binary, nil:
      break
    }
    return nil
  }

  /// At most 64 characters of `text` with anything not printable ASCII escaped, for messages.
  static func printable(_ text: String) -> String {
    var out = ""
    for scalar in text.unicodeScalars.prefix(64) {
      if (0x20...0x7E).contains(scalar.value) && scalar != "'" && scalar != "\\" {
        out.unicodeScalars.append(scalar)
      } else {
        out += "\\u{\(String(scalar.value, radix: 16))}"
      }
    }
    return text.unicodeScalars.count > 64 ? out + "…" : out
  }
}

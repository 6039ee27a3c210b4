import Foundation
import GRPCCore
import NIOCore
import SwiftProtobuf
import Testing

@testable import PEMISWire

/// The connection's protocol without a socket: frames in, actions out, time passed by hand.
@Suite("PEMIS wire: the connection state machine")
struct WireStateMachineTests {
  typealias Machine = WireConnection.StateMachine
  static let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

  static func machine(
    _ role: WireConnection.Role = .server, limits: WireLimits = .defaults,
    idle: TimeAmount? = .seconds(60), halfClose: TimeAmount? = .seconds(30), unread: TimeAmount? = .seconds(10),
    maxBufferedInboundBytes: Int? = nil, maxUnwrittenBytes: Int = 1024 * 1024
  ) -> Machine {
    Machine(
      role: role, limits: limits,
      timeouts: .init(handshake: .seconds(5), idle: idle, halfClose: halfClose, unreadResponses: unread),
      now: t0, maxBufferedInboundBytes: maxBufferedInboundBytes, maxUnwrittenBytes: maxUnwrittenBytes,
      methods: [
        "/pemis.v1.Echo/Get": MethodDescriptor(fullyQualifiedService: "pemis.v1.Echo", method: "Get", type: .unary),
        "/pemis.v1.Echo/Collect": MethodDescriptor(fullyQualifiedService: "pemis.v1.Echo", method: "Collect", type: .clientStreaming),
      ])
  }

  static func frame(_ kind: Frame.Kind, _ stream: UInt32, _ bytes: [UInt8] = [], flags: Frame.Flags = []) -> FrameDecoder.Event {
    .frame(Frame(kind: kind, flags: flags, streamID: stream, payload: ByteBuffer(bytes: bytes)))
  }

  static func frame(_ kind: Frame.Kind, _ stream: UInt32, _ message: some SwiftProtobuf.Message) -> FrameDecoder.Event {
    frame(kind, stream, try! message.serializedBytes() as [UInt8])
  }

  static func hello(server: Bool = false) -> FrameDecoder.Event {
    var hello = Pemis_Wire_V1_Hello()
    hello.minVersion = 1
    hello.maxVersion = 1
    hello.maxFrameSize = 4 * 1024 * 1024
    hello.initialStreamWindow = 4
    if server { hello.maxConcurrentStreams = 10 }
    return frame(.hello, 0, hello)
  }

  static func callStart(_ method: String = "/pemis.v1.Echo/Collect", metadata: [Pemis_Wire_V1_MetadataEntry] = []) -> Pemis_Wire_V1_CallStart {
    var start = Pemis_Wire_V1_CallStart()
    start.method = method
    start.metadata = metadata
    return start
  }

  static func windowUpdate(_ stream: UInt32, _ increment: UInt32) -> FrameDecoder.Event {
    var buffer = ByteBuffer()
    buffer.writeInteger(increment, endianness: .big)
    return .frame(Frame(kind: .windowUpdate, streamID: stream, payload: buffer))
  }

  /// A server machine past the handshake.
  static func shaken(_ machine: Machine = machine()) -> Machine {
    var machine = machine
    _ = machine.receive(hello(), now: t0)
    return machine
  }

  static func isFail(_ action: Machine.ReceiveAction, _ code: Pemis_Wire_V1_GoAway.Code = .protocolError, containing text: String = "") -> Bool {
    guard case .fail(let got, let reason) = action else { return false }
    return got == code && (text.isEmpty || reason.contains(text))
  }

  static func refusal(_ action: Machine.ReceiveAction) -> Status? {
    if case .refuseCall(_, let status) = action { return status }
    return nil
  }

  // MARK: Handshake

  @Test("before HELLO, every other frame kind is a protocol error", arguments: [
    Frame.Kind.callStart, .responseStart, .message, .closeSend, .callEnd, .cancel, .ping, .goAway, .windowUpdate,
    Frame.Kind(rawValue: 0x7F),
  ])
  func beforeHello(kind: Frame.Kind) {
    var machine = Self.machine()
    let action = machine.receive(Self.frame(kind, kind == .ping || kind == .goAway ? 0 : 1, [0, 0, 0, 1]), now: Self.t0)
    #expect(Self.isFail(action, containing: "expected HELLO"))
    #expect(machine.receive(Self.hello(), now: Self.t0) == .ignore, "after a failure the rest is ignored")
  }

  @Test("HELLO completes the handshake once; a second HELLO is a protocol error")
  func helloTwice() {
    var machine = Self.machine()
    guard case .handshakeComplete(let peer, replyHello: true) = machine.receive(Self.hello(), now: Self.t0) else {
      Issue.record("no handshake")
      return
    }
    #expect(peer.initialStreamWindow == 4)
    #expect(Self.isFail(machine.receive(Self.hello(), now: Self.t0), containing: "twice"))
  }

  @Test("a client does not reply to the server's HELLO, and takes its concurrency limit")
  func clientHello() {
    var machine = Self.machine(.client)
    guard case .handshakeComplete(let peer, replyHello: false) = machine.receive(Self.hello(server: true), now: Self.t0)
    else {
      Issue.record("no handshake")
      return
    }
    #expect(peer.maxConcurrentStreams == 10)
  }

  @Test("no HELLO within the handshake timeout closes the connection")
  func handshakeTimeout() {
    var machine = Self.machine()
    #expect(machine.tick(now: Self.t0 + .seconds(4)).isEmpty)
    #expect(machine.tick(now: Self.t0 + .seconds(5)) == [.close(.protocolError, "no HELLO within 5000 ms")])
  }

  // MARK: Stream 0 and direction

  @Test("a call frame on stream 0 is a protocol error", arguments: [
    Frame.Kind.callStart, .message, .closeSend, .cancel,
  ])
  func callFrameOnStreamZero(kind: Frame.Kind) {
    var machine = Self.shaken()
    #expect(Self.isFail(machine.receive(Self.frame(kind, 0, [1]), now: Self.t0), containing: "stream 0"))
  }

  @Test("HELLO, PING and GOAWAY off stream 0 are protocol errors", arguments: [Frame.Kind.hello, .ping, .goAway])
  func connectionFrameOnStream(kind: Frame.Kind) {
    var machine = Self.shaken()
    #expect(Self.isFail(machine.receive(Self.frame(kind, 3, [0, 0, 0, 0, 0, 0, 0, 0]), now: Self.t0), containing: "belongs on stream 0"))
  }

  @Test("frames sent in the wrong direction are protocol errors")
  func wrongDirection() {
    for kind in [Frame.Kind.responseStart, .callEnd] {
      var server = Self.shaken()
      #expect(Self.isFail(server.receive(Self.frame(kind, 1, []), now: Self.t0)), "server receiving \(kind)")
    }
    for kind in [Frame.Kind.callStart, .closeSend, .cancel] {
      var client = Self.machine(.client)
      _ = client.receive(Self.hello(server: true), now: Self.t0)
      #expect(Self.isFail(client.receive(Self.frame(kind, 1, []), now: Self.t0)), "client receiving \(kind)")
    }
  }

  @Test("an unknown frame kind is ignored after the handshake")
  func unknownKind() {
    var machine = Self.shaken()
    #expect(machine.receive(Self.frame(Frame.Kind(rawValue: 0x42), 0, [1, 2]), now: Self.t0) == .ignore)
  }

  @Test("PING is answered unless it is an ACK; a PING that is not 8 bytes is a protocol error")
  func ping() {
    var machine = Self.shaken()
    let bytes: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]
    #expect(machine.receive(Self.frame(.ping, 0, bytes), now: Self.t0) == .pong(ByteBuffer(bytes: bytes)))
    #expect(machine.receive(Self.frame(.ping, 0, bytes, flags: .ack), now: Self.t0) == .ignore)
    #expect(Self.isFail(machine.receive(Self.frame(.ping, 0, [1]), now: Self.t0)))
  }

  @Test("WINDOW_UPDATE on stream 0 is ignored; an increment of 0 is a protocol error on any stream")
  func windowUpdateZero() {
    var machine = Self.shaken()
    #expect(machine.receive(Self.windowUpdate(0, 5), now: Self.t0) == .ignore)
    #expect(Self.isFail(machine.receive(Self.windowUpdate(0, 0), now: Self.t0), containing: "above 0"))
    var other = Self.shaken()
    _ = other.receive(Self.frame(.callStart, 1, Self.callStart()), now: Self.t0)
    #expect(Self.isFail(other.receive(Self.windowUpdate(1, 0), now: Self.t0), containing: "above 0"))
    var short = Self.shaken()
    #expect(Self.isFail(short.receive(Self.frame(.windowUpdate, 1, [0, 1]), now: Self.t0), containing: "4-byte"))
  }

  // MARK: Stream states

  enum StreamState: String, CaseIterable, CustomTestStringConvertible {
    case open, halfClosed, ended, skipped, neverOpened
    var testDescription: String { rawValue }
  }

  /// A server with streams 1 (open), 3 (half-closed), 5 (ended) and 9 (open); 7 was skipped.
  static func serverWithStreams() -> Machine {
    var machine = shaken()
    for id: UInt32 in [1, 3, 5, 9] { _ = machine.receive(frame(.callStart, id, callStart()), now: t0) }
    _ = machine.receive(frame(.closeSend, 3), now: t0)
    _ = machine.removeStream(5, now: t0)
    return machine
  }

  static func id(_ state: StreamState) -> UInt32 {
    switch state {
    case .open: 1
    case .halfClosed: 3
    case .ended: 5
    case .skipped: 7
    case .neverOpened: 11
    }
  }

  @Test("MESSAGE in every stream state", arguments: StreamState.allCases)
  func messageIn(state: StreamState) {
    var machine = Self.serverWithStreams()
    let action = machine.receive(Self.frame(.message, Self.id(state), [1, 2]), now: Self.t0)
    switch state {
    case .open: #expect(action == .deliverMessage(id: 1))
    case .halfClosed: #expect(Self.isFail(action, containing: "after CLOSE_SEND"))
    case .ended, .skipped: #expect(action == .ignore)
    case .neverOpened: #expect(Self.isFail(action, containing: "never opened"))
    }
  }

  @Test("CLOSE_SEND in every stream state", arguments: StreamState.allCases)
  func closeSendIn(state: StreamState) {
    var machine = Self.serverWithStreams()
    let action = machine.receive(Self.frame(.closeSend, Self.id(state)), now: Self.t0)
    switch state {
    case .open: #expect(action == .finishInbound(id: 1))
    case .halfClosed: #expect(Self.isFail(action, containing: "CLOSE_SEND twice"))
    case .ended, .skipped: #expect(action == .ignore)
    case .neverOpened: #expect(Self.isFail(action, containing: "never opened"))
    }
  }

  @Test("CANCEL in every stream state", arguments: StreamState.allCases)
  func cancelIn(state: StreamState) {
    var machine = Self.serverWithStreams()
    let action = machine.receive(Self.frame(.cancel, Self.id(state)), now: Self.t0)
    switch state {
    case .open: #expect(action == .callCancelled(id: 1, reason: "", closeConnection: false))
    case .halfClosed: #expect(action == .callCancelled(id: 3, reason: "", closeConnection: false))
    case .ended, .skipped: #expect(action == .ignore)
    case .neverOpened: #expect(Self.isFail(action, containing: "never opened"))
    }
    if state == .open || state == .halfClosed { #expect(machine.streams[Self.id(state)] == nil) }
  }

  @Test("WINDOW_UPDATE in every stream state", arguments: StreamState.allCases)
  func windowUpdateIn(state: StreamState) {
    var machine = Self.serverWithStreams()
    let action = machine.receive(Self.windowUpdate(Self.id(state), 3), now: Self.t0)
    switch state {
    case .open, .halfClosed:
      #expect(action == .creditGranted(id: Self.id(state)))
      #expect(machine.streams[Self.id(state)]?.sendCredits == 4 + 3)
    case .ended, .skipped: #expect(action == .ignore)
    case .neverOpened: #expect(Self.isFail(action, containing: "never opened"))
    }
  }

  @Test("CALL_START in every stream state: only a new, higher odd id opens a call", arguments: StreamState.allCases)
  func callStartIn(state: StreamState) {
    var machine = Self.serverWithStreams()
    let action = machine.receive(Self.frame(.callStart, Self.id(state), Self.callStart()), now: Self.t0)
    if state == .neverOpened {
      guard case .openCall(id: 11, _, _, _) = action else {
        Issue.record("expected call 11 to open, got \(action)")
        return
      }
    } else {
      #expect(Self.isFail(action, containing: "odd and increasing"))
    }
  }

  @Test("an even CALL_START id is a protocol error; an undecodable CALL_START too")
  func badCallStart() {
    var even = Self.shaken()
    #expect(Self.isFail(even.receive(Self.frame(.callStart, 2, Self.callStart()), now: Self.t0), containing: "odd"))
    var garbage = Self.shaken()
    #expect(Self.isFail(garbage.receive(Self.frame(.callStart, 1, [0xFF, 0xFF]), now: Self.t0), containing: "CallStart"))
  }

  @Test("a malformed method path is refused with UNIMPLEMENTED and the connection goes on")
  func malformedMethod() {
    var machine = Self.shaken()
    #expect(Self.refusal(machine.receive(Self.frame(.callStart, 1, Self.callStart("nonsense")), now: Self.t0))?.code == .unimplemented)
    guard case .openCall = machine.receive(Self.frame(.callStart, 3, Self.callStart()), now: Self.t0) else {
      Issue.record("next call not admitted")
      return
    }
  }

  // MARK: Flow control and buffering

  @Test("MESSAGE beyond the window is a protocol error; consuming half the window grants it back")
  func window() {
    var machine = Self.shaken()  // window 64 by default on the server side
    _ = machine.receive(Self.frame(.callStart, 1, Self.callStart()), now: Self.t0)
    for _ in 0..<64 { #expect(machine.receive(Self.frame(.message, 1, [1]), now: Self.t0) == .deliverMessage(id: 1)) }
    #expect(Self.isFail(machine.receive(Self.frame(.message, 1, [1]), now: Self.t0), containing: "window"))

    var granting = Self.shaken()
    _ = granting.receive(Self.frame(.callStart, 1, Self.callStart()), now: Self.t0)
    for _ in 0..<64 { _ = granting.receive(Self.frame(.message, 1, [1]), now: Self.t0) }
    var grants: [UInt32] = []
    for _ in 0..<32 { if let grant = granting.messageConsumed(1, size: 1) { grants.append(grant) } }
    #expect(grants == [32])
    #expect(granting.receive(Self.frame(.message, 1, [1]), now: Self.t0) == .deliverMessage(id: 1))
    #expect(granting.bufferedInboundBytes == 64 - 32 + 1)
  }

  @Test("unread request bytes over the connection's limit fail that call, not the connection")
  func bufferedInbound() {
    var machine = Self.shaken(Self.machine(maxBufferedInboundBytes: 10))
    _ = machine.receive(Self.frame(.callStart, 1, Self.callStart()), now: Self.t0)
    #expect(machine.receive(Self.frame(.message, 1, [UInt8](repeating: 0, count: 8)), now: Self.t0) == .deliverMessage(id: 1))
    guard case .endCall(1, let status, false) = machine.receive(Self.frame(.message, 1, [1, 2, 3]), now: Self.t0) else {
      Issue.record("call not ended")
      return
    }
    #expect(status.code == .resourceExhausted)
    #expect(machine.bufferedInboundBytes == 0)
    guard case .openCall = machine.receive(Self.frame(.callStart, 3, Self.callStart()), now: Self.t0) else {
      Issue.record("connection did not go on")
      return
    }
  }

  @Test("a writer waits while the connection's unwritten bytes are over the limit, then goes on")
  func unwrittenBacklog() {
    var machine = Self.shaken(Self.machine(maxUnwrittenBytes: 100))
    _ = machine.receive(Self.frame(.callStart, 1, Self.callStart()), now: Self.t0)
    #expect(machine.sendMessage(1, size: 500, writable: true) == .send, "one message goes when nothing waits")
    machine.queued(500, now: Self.t0)
    #expect(machine.sendMessage(1, size: 10, writable: true) == .waitForSocket)
    let drained = machine.written(500, now: Self.t0)
    #expect(drained)
    #expect(machine.sendMessage(1, size: 10, writable: true) == .send)
    #expect(machine.sendMessage(1, size: 10, writable: false) == .waitForSocket)
    #expect(machine.sendMessage(7, size: 10, writable: true) == .gone)
  }

  @Test("a writer told to wait for the socket is not told to retry until its message fits (no spinning)")
  func waitForSocketMeansWait() {
    var machine = Self.shaken(Self.machine(maxUnwrittenBytes: 1000))
    _ = machine.receive(Self.frame(.callStart, 1, Self.callStart()), now: Self.t0)
    #expect(machine.sendMessage(1, size: 900, writable: true) == .send)
    machine.queued(900, now: Self.t0)
    // 900 of 1000 unwritten: a 200-byte message does not fit, although the backlog is under the limit.
    #expect(machine.sendMessage(1, size: 200, writable: true) == .waitForSocket)
    #expect(!machine.mayRetryWrite(size: 200, writable: true, drained: false), "woken now, the writer would spin")
    #expect(machine.mayRetryWrite(size: 50, writable: true, drained: false))
    _ = machine.written(200, now: Self.t0)
    #expect(!machine.mayRetryWrite(size: 200, writable: false, drained: false))
    #expect(machine.mayRetryWrite(size: 200, writable: true, drained: false))
    #expect(machine.sendMessage(1, size: 200, writable: true) == .send)
  }

  @Test("over the server's budget, a connection with answers unwritten waits for its own drain; one with none still sends")
  func overBudgetFairness() {
    var reader = Self.shaken(Self.machine(maxUnwrittenBytes: 100_000))
    _ = reader.receive(Self.frame(.callStart, 1, Self.callStart()), now: Self.t0)
    #expect(reader.sendMessage(1, size: 500, writable: true, overBudget: true) == .send, "a client that reads is not held up")
    reader.queued(500, now: Self.t0)
    #expect(reader.sendMessage(1, size: 500, writable: true, overBudget: true) == .waitForDrain)
    #expect(!reader.mayRetryWrite(size: 500, writable: true, drained: true))
    _ = reader.written(400, now: Self.t0)
    #expect(!reader.mayRetryWrite(size: 500, writable: true, drained: true), "100 bytes are still unwritten")
    _ = reader.written(100, now: Self.t0)
    #expect(reader.mayRetryWrite(size: 500, writable: true, drained: true))
    #expect(reader.sendMessage(1, size: 500, writable: true, overBudget: true) == .send)
    #expect(reader.sendMessage(1, size: 500, writable: true, overBudget: false) == .send, "within the budget the backlog limit applies")
  }

  @Test("over the server's budget, a request fails its call only on a connection that already holds budget bytes")
  func overBudgetRequests() {
    var machine = Self.shaken()
    _ = machine.receive(Self.frame(.callStart, 1, Self.callStart()), now: Self.t0)
    #expect(!machine.refusesMessagesOverBudget, "a connection holding nothing gets its request through")
    _ = machine.receive(Self.frame(.message, 1, [1, 2, 3]), now: Self.t0)
    #expect(machine.refusesMessagesOverBudget, "3 request bytes are unread")
    _ = machine.messageConsumed(1, size: 3)
    #expect(machine.refusesMessagesOverBudget, "the handler holds its 3 request bytes until the call ends")
    _ = machine.removeStream(1, now: Self.t0)
    #expect(!machine.refusesMessagesOverBudget)
    machine.queued(10, now: Self.t0)
    #expect(machine.refusesMessagesOverBudget, "10 answer bytes are unwritten")
  }

  @Test("what a connection holds for the budget: unread and handled requests, waiting and unwritten answers")
  func heldBytes() {
    var machine = Self.shaken()
    _ = machine.receive(Self.frame(.callStart, 1, Self.callStart("/pemis.v1.Echo/Collect")), now: Self.t0)
    _ = machine.receive(Self.frame(.callStart, 3, Self.callStart("/pemis.v1.Echo/Get")), now: Self.t0)
    _ = machine.receive(Self.frame(.message, 1, [UInt8](repeating: 1, count: 100)), now: Self.t0)
    _ = machine.receive(Self.frame(.message, 1, [UInt8](repeating: 1, count: 40)), now: Self.t0)
    _ = machine.receive(Self.frame(.message, 3, [UInt8](repeating: 1, count: 7)), now: Self.t0)
    #expect(machine.heldBytes == 147, "unread: 100 + 40 + 7")
    _ = machine.messageConsumed(1, size: 100)
    _ = machine.messageConsumed(3, size: 7)
    #expect(machine.heldBytes == 147, "taken by the handlers, still held by them")
    _ = machine.messageConsumed(1, size: 40)
    #expect(machine.heldBytes == 47, "a streaming handler holds the message it took last, not all it took")
    // Before, a writer waiting for a client that never read held its answer uncounted.
    machine.writerWaiting(1_000)
    #expect(machine.heldBytes == 1_047)
    machine.writerDone(1_000)
    machine.queued(500, now: Self.t0)
    #expect(machine.heldBytes == 547)
    _ = machine.removeStream(3, now: Self.t0)
    #expect(machine.heldBytes == 540, "the Get call ended: its request is no longer held")
    _ = machine.removeStream(1, now: Self.t0)
    _ = machine.written(500, now: Self.t0)
    #expect(machine.heldBytes == 0)
    _ = machine.receive(Self.frame(.callStart, 5, Self.callStart("/pemis.v1.Echo/Get")), now: Self.t0)
    _ = machine.receive(Self.frame(.message, 5, [1, 2]), now: Self.t0)
    _ = machine.messageConsumed(5, size: 2)
    _ = machine.closed()
    #expect(machine.heldBytes == 0, "a closed connection holds no requests")
  }

  @Test("a unary call with no request message or two is refused with INVALID_ARGUMENT; a streaming one is not")
  func unaryMessageCount() {
    var none = Self.shaken()
    _ = none.receive(Self.frame(.callStart, 1, Self.callStart("/pemis.v1.Echo/Get")), now: Self.t0)
    guard case .endCall(1, let empty, false) = none.receive(Self.frame(.closeSend, 1), now: Self.t0) else {
      Issue.record("no refusal for 0 messages")
      return
    }
    #expect(empty.code == .invalidArgument)
    #expect(empty.message.contains("exactly one request message"))
    var two = Self.shaken()
    _ = two.receive(Self.frame(.callStart, 1, Self.callStart("/pemis.v1.Echo/Get")), now: Self.t0)
    #expect(two.receive(Self.frame(.message, 1, [1]), now: Self.t0) == .deliverMessage(id: 1))
    guard case .endCall(1, let second, false) = two.receive(Self.frame(.message, 1, [2]), now: Self.t0) else {
      Issue.record("no refusal for 2 messages")
      return
    }
    #expect(second.code == .invalidArgument)
    var streaming = Self.shaken()
    _ = streaming.receive(Self.frame(.callStart, 1, Self.callStart("/pemis.v1.Echo/Collect")), now: Self.t0)
    #expect(streaming.receive(Self.frame(.closeSend, 1), now: Self.t0) == .finishInbound(id: 1))
  }

  @Test("a writer out of credit waits for WINDOW_UPDATE")
  func sendCredit() {
    var machine = Self.shaken()  // the client's HELLO grants a window of 4
    _ = machine.receive(Self.frame(.callStart, 1, Self.callStart()), now: Self.t0)
    for _ in 0..<4 { #expect(machine.sendMessage(1, size: 1, writable: true) == .send) }
    #expect(machine.sendMessage(1, size: 1, writable: true) == .waitForCredit)
    #expect(machine.receive(Self.windowUpdate(1, 1), now: Self.t0) == .creditGranted(id: 1))
    #expect(machine.sendMessage(1, size: 1, writable: true) == .send)
  }

  @Test("a WINDOW_UPDATE past 2^31-1 is a protocol error")
  func windowOverflow() {
    var machine = Self.shaken()
    _ = machine.receive(Self.frame(.callStart, 1, Self.callStart()), now: Self.t0)
    #expect(Self.isFail(machine.receive(Self.windowUpdate(1, .max), now: Self.t0), containing: "2^31-1"))
  }

  // MARK: Oversized frames

  @Test("an oversized control frame closes the connection; an oversized MESSAGE or CALL_START fails only its call")
  func oversized() {
    var control = Self.shaken()
    #expect(
      Self.isFail(
        control.receive(.oversized(kind: .goAway, flags: [], streamID: 0, length: 9_999_999), now: Self.t0), .frameTooLarge))
    var message = Self.shaken()
    _ = message.receive(Self.frame(.callStart, 1, Self.callStart()), now: Self.t0)
    guard case .endCall(1, let status, false) = message.receive(
      .oversized(kind: .message, flags: [], streamID: 1, length: 9_999_999), now: Self.t0)
    else {
      Issue.record("call not ended")
      return
    }
    #expect(status.code == .resourceExhausted)
    var start = Self.shaken()
    #expect(Self.refusal(start.receive(.oversized(kind: .callStart, flags: [], streamID: 1, length: 9_999_999), now: Self.t0))?.code == .resourceExhausted)
    #expect(Self.isFail(start.receive(Self.frame(.callStart, 1, Self.callStart()), now: Self.t0)), "its id is used up")
    var unknown = Self.shaken()
    #expect(Self.isFail(unknown.receive(.oversized(kind: .message, flags: [], streamID: 5, length: 9_999_999), now: Self.t0), .frameTooLarge))
  }

  // MARK: Concurrency and draining

  @Test("a CALL_START beyond the concurrency limit is refused with RESOURCE_EXHAUSTED")
  func concurrency() {
    var machine = Self.shaken(Self.machine(limits: WireLimits(maxConcurrentStreams: 2)))
    for id: UInt32 in [1, 3] {
      guard case .openCall = machine.receive(Self.frame(.callStart, id, Self.callStart()), now: Self.t0) else {
        Issue.record("call \(id) not admitted")
        return
      }
    }
    #expect(Self.refusal(machine.receive(Self.frame(.callStart, 5, Self.callStart()), now: Self.t0))?.code == .resourceExhausted)
    _ = machine.receive(Self.frame(.cancel, 1), now: Self.t0)
    machine.handlerFinished()
    guard case .openCall = machine.receive(Self.frame(.callStart, 7, Self.callStart()), now: Self.t0) else {
      Issue.record("slot not freed")
      return
    }
  }

  @Test("the drain race: a CALL_START that crossed our GOAWAY is refused; calls up to its id finish")
  func drainRace() {
    var machine = Self.shaken()
    _ = machine.receive(Self.frame(.callStart, 1, Self.callStart()), now: Self.t0)
    let (last, closeNow) = machine.beginDraining()
    #expect(last == 1)
    #expect(!closeNow)
    #expect(machine.beginDraining().goAwayLastStreamID == nil, "GOAWAY goes once")
    // The client sent this before it read our GOAWAY.
    let late = Self.refusal(machine.receive(Self.frame(.callStart, 3, Self.callStart()), now: Self.t0))
    #expect(late?.code == .unavailable)
    #expect(machine.streams[3] == nil)
    // Call 1 runs to the end; when it ends, the connection closes.
    #expect(machine.receive(Self.frame(.message, 1, [1]), now: Self.t0) == .deliverMessage(id: 1))
    #expect(machine.receive(Self.frame(.closeSend, 1), now: Self.t0) == .finishInbound(id: 1))
    let closes = machine.removeStream(1, now: Self.t0)
    #expect(closes, "last stream of a draining connection closes it")
  }

  @Test("draining with nothing open closes at once")
  func drainEmpty() {
    var machine = Self.shaken()
    let (last, closeNow) = machine.beginDraining()
    #expect(last == 0)
    #expect(closeNow)
  }

  @Test("CALL_START after the client's own GOAWAY is refused; the client's open calls finish")
  func callStartAfterClientGoAway() {
    var machine = Self.shaken()
    _ = machine.receive(Self.frame(.callStart, 1, Self.callStart()), now: Self.t0)
    #expect(machine.receive(Self.frame(.goAway, 0, Pemis_Wire_V1_GoAway()), now: Self.t0)
      == .peerGoingAway(unprocessed: [], reason: "", closeConnection: false))
    #expect(Self.refusal(machine.receive(Self.frame(.callStart, 3, Self.callStart()), now: Self.t0))?.code == .unavailable)
    #expect(machine.receive(Self.frame(.cancel, 1), now: Self.t0) == .callCancelled(id: 1, reason: "", closeConnection: true))
  }

  @Test("a client receiving GOAWAY fails the streams above last_stream_id and opens no more")
  func clientReceivesGoAway() throws {
    var machine = Self.machine(.client)
    _ = machine.receive(Self.hello(server: true), now: Self.t0)
    let ids = try (0..<3).map { _ in try machine.openClientStream(now: Self.t0).get() }
    #expect(ids == [1, 3, 5])
    var goAway = Pemis_Wire_V1_GoAway()
    goAway.lastStreamID = 1
    #expect(machine.receive(Self.frame(.goAway, 0, goAway), now: Self.t0)
      == .peerGoingAway(unprocessed: [3, 5], reason: "", closeConnection: false))
    #expect(!machine.acceptsNewStreams)
    #expect(throws: RPCError.self) { try machine.openClientStream(now: Self.t0).get() }
  }

  // MARK: Metadata rules

  static func entry(_ key: String, text: String) -> Pemis_Wire_V1_MetadataEntry {
    var entry = Pemis_Wire_V1_MetadataEntry()
    entry.key = key
    entry.text = text
    return entry
  }

  static func entry(_ key: String, binary: [UInt8]) -> Pemis_Wire_V1_MetadataEntry {
    var entry = Pemis_Wire_V1_MetadataEntry()
    entry.key = key
    entry.binary = Data(binary)
    return entry
  }

  @Test("metadata that breaks gRPC's rules refuses the call with INVALID_ARGUMENT naming the key and rule", arguments: [
    (entry("x-probe", binary: [1, 2]), "x-probe", "binary value needs a key ending in -bin"),
    (entry("x-probe-bin", text: "hi"), "x-probe-bin", "not text"),
    (entry("Authorization", text: "Bearer x"), "Authorization", "lower-case"),
    (entry("x probe", text: "v"), "x probe", "lower-case"),
    (entry("", text: "v"), "", "must not be empty"),
    (entry("x-probe", text: "line\nbreak"), "x-probe", "printable ASCII"),
    (entry("x-probe", text: "名字"), "x-probe", "printable ASCII"),
    (entry("x-\u{0}nul", text: "v"), "x-\\u{0}nul", "lower-case"),
  ])
  func metadataRules(entry: Pemis_Wire_V1_MetadataEntry, key: String, rule: String) {
    var machine = Self.shaken()
    let status = Self.refusal(
      machine.receive(Self.frame(.callStart, 1, Self.callStart(metadata: [entry])), now: Self.t0))
    #expect(status?.code == .invalidArgument)
    #expect(status?.message.contains("metadata key '\(key)'") == true, "\(status?.message ?? "")")
    #expect(status?.message.contains(rule) == true, "\(status?.message ?? "")")
    #expect(machine.streams.isEmpty)
  }

  @Test("metadata within the rules opens the call")
  func metadataFine() {
    var machine = Self.shaken()
    let entries = [
      Self.entry("authorization", text: "Bearer abc-_=~"), Self.entry("x-probe-bin", binary: [0, 255]),
      Self.entry("pemis.trace_id", text: ""),
    ]
    guard case .openCall(_, _, let metadata, _) = machine.receive(
      Self.frame(.callStart, 1, Self.callStart(metadata: entries)), now: Self.t0)
    else {
      Issue.record("call not admitted")
      return
    }
    #expect(Array(metadata[binaryValues: "x-probe-bin"]) == [[0, 255]])
  }

  @Test("a client fails a call whose response metadata or trailers break the rules")
  func clientMetadataRules() throws {
    var machine = Self.machine(.client)
    _ = machine.receive(Self.hello(server: true), now: Self.t0)
    let id = try machine.openClientStream(now: Self.t0).get()
    var start = Pemis_Wire_V1_ResponseStart()
    start.metadata = [Self.entry("x-probe", binary: [1])]
    guard case .endCall(id, let status, _) = machine.receive(Self.frame(.responseStart, id, start), now: Self.t0) else {
      Issue.record("call not failed")
      return
    }
    #expect(status.code == .internalError)
    let second = try machine.openClientStream(now: Self.t0).get()
    var end = Pemis_Wire_V1_CallEnd()
    end.trailers = [Self.entry("x-probe-bin", text: "t")]
    guard case .callEnded(second, let ended, _, _) = machine.receive(Self.frame(.callEnd, second, end), now: Self.t0) else {
      Issue.record("call not ended")
      return
    }
    #expect(ended.code == .internalError)
  }

  // MARK: Timeouts

  @Test("a call that never half-closes ends with DEADLINE_EXCEEDED at the limit; a half-closed one does not")
  func halfCloseTimeout() {
    var machine = Self.shaken()
    _ = machine.receive(Self.frame(.callStart, 1, Self.callStart()), now: Self.t0)
    _ = machine.receive(Self.frame(.callStart, 3, Self.callStart()), now: Self.t0)
    _ = machine.receive(Self.frame(.closeSend, 3), now: Self.t0)
    #expect(machine.tick(now: Self.t0 + .seconds(29)).isEmpty)
    let actions = machine.tick(now: Self.t0 + .seconds(30))
    guard case .endCall(1, let status, false)? = actions.first, actions.count == 1 else {
      Issue.record("expected call 1 to end, got \(actions)")
      return
    }
    #expect(status.code == .deadlineExceeded)
    #expect(status.message.contains("CLOSE_SEND"))
    #expect(machine.streams.keys.sorted() == [3])
  }

  @Test("the idle timeout counts calls that wait for their client, not calls the server works on")
  func idleCountsStuckCalls() {
    var stuck = Self.shaken(Self.machine(halfClose: nil))
    _ = stuck.receive(Self.frame(.callStart, 1, Self.callStart()), now: Self.t0)
    #expect(stuck.tick(now: Self.t0 + .seconds(59)).isEmpty)
    #expect(stuck.tick(now: Self.t0 + .seconds(60)) == [.close(.idleTimeout, "no call made progress for 60 s")])

    var working = Self.shaken(Self.machine(halfClose: nil))
    _ = working.receive(Self.frame(.callStart, 1, Self.callStart()), now: Self.t0)
    _ = working.receive(Self.frame(.closeSend, 1), now: Self.t0)
    #expect(working.tick(now: Self.t0 + .seconds(600)).isEmpty, "the handler is still working")

    var quiet = Self.shaken()
    #expect(quiet.tick(now: Self.t0 + .seconds(60)) == [.close(.idleTimeout, "no call made progress for 60 s")])
  }

  @Test("progress resets the idle clock")
  func idleProgress() {
    var machine = Self.shaken(Self.machine(halfClose: nil))
    _ = machine.receive(Self.frame(.callStart, 1, Self.callStart()), now: Self.t0)
    _ = machine.receive(Self.frame(.message, 1, [1]), now: Self.t0 + .seconds(50))
    #expect(machine.tick(now: Self.t0 + .seconds(100)).isEmpty)
    #expect(!machine.tick(now: Self.t0 + .seconds(110)).isEmpty)
  }

  @Test("answers left unwritten past the limit close the connection; written ones do not")
  func unreadResponses() {
    var machine = Self.shaken()
    _ = machine.receive(Self.frame(.callStart, 1, Self.callStart()), now: Self.t0)
    _ = machine.receive(Self.frame(.closeSend, 1), now: Self.t0)
    machine.queued(1000, now: Self.t0)
    _ = machine.written(400, now: Self.t0 + .seconds(5))
    #expect(machine.tick(now: Self.t0 + .seconds(14)).isEmpty, "the socket took bytes 9 s ago")
    guard case .close(.protocolError, let reason)? = machine.tick(now: Self.t0 + .seconds(15)).first else {
      Issue.record("not closed")
      return
    }
    #expect(reason.contains("has not read its answers"))
    #expect(machine.receive(Self.frame(.message, 1, [1]), now: Self.t0) == .ignore, "nothing more is read")
  }
}

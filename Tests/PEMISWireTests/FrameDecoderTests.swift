import NIOCore
import NIOTestUtils
import Testing

@testable import PEMISWire

@Suite("Frame codec")
struct FrameDecoderTests {
  static func encoded(_ frames: [Frame]) -> ByteBuffer {
    var buffer = ByteBuffer()
    for frame in frames { frame.encode(into: &buffer) }
    return buffer
  }

  static func frame(_ kind: Frame.Kind, _ stream: UInt32, _ bytes: [UInt8], flags: Frame.Flags = []) -> Frame {
    Frame(kind: kind, flags: flags, streamID: stream, payload: ByteBuffer(bytes: bytes))
  }

  @Test("header layout is big-endian length, kind, flags, stream id")
  func headerLayout() {
    let buffer = Self.encoded([Self.frame(.ping, 0, [1, 2, 3, 4, 5, 6, 7, 8], flags: .ack)])
    #expect(
      Array(buffer.readableBytesView)
        == [0, 0, 0, 8, 0x08, 0x01, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
  }

  @Test("decodes frames however the bytes are split (ByteToMessageDecoderVerifier)")
  func verifier() throws {
    let frames = [
      Self.frame(.hello, 0, [0x08, 0x01]),
      Self.frame(.callStart, 1, Array("/pemis.v1.Echo/Get".utf8)),
      Self.frame(.message, 1, []),
      Self.frame(.message, 1, Array(repeating: 0xAB, count: 1000)),
      Self.frame(.closeSend, 1, []),
      Self.frame(Frame.Kind(rawValue: 0x7F), 0xFFFF_FFFF, [9]),
    ]
    let pairs = frames.map { (Self.encoded([$0]), [FrameDecoder.Event.frame($0)]) }
    try ByteToMessageDecoderVerifier.verifyDecoder(
      inputOutputPairs: pairs,
      decoderFactory: { FrameDecoder(maxPayloadSize: 4096) })
  }

  @Test("an oversized frame is reported from its header and its payload skipped, not buffered")
  func oversized() throws {
    var decoder = FrameDecoder(maxPayloadSize: 16)
    var buffer = Self.encoded([
      Self.frame(.message, 3, Array(repeating: 1, count: 100)), Self.frame(.message, 5, [7]),
    ])
    // Only the header and part of the payload have arrived: the event comes at once.
    var partial = buffer.readSlice(length: 30)!
    #expect(try decoder.decode(buffer: &partial) == .oversized(kind: .message, flags: [], streamID: 3, length: 100))
    #expect(try decoder.decode(buffer: &partial) == nil)
    #expect(partial.readableBytes == 0, "skipped bytes are dropped, not kept")
    // The rest of the oversized payload is skipped; the next frame decodes normally.
    #expect(try decoder.decode(buffer: &buffer) == .frame(Self.frame(.message, 5, [7])))
  }

  @Test("a frame exactly at the limit is accepted")
  func atLimit() throws {
    var decoder = FrameDecoder(maxPayloadSize: 16)
    var buffer = Self.encoded([Self.frame(.message, 1, Array(repeating: 2, count: 16))])
    #expect(try decoder.decode(buffer: &buffer) == .frame(Self.frame(.message, 1, Array(repeating: 2, count: 16))))
  }

  @Test("a connection closing mid-frame is reported as truncation")
  func truncated() throws {
    var decoder = FrameDecoder(maxPayloadSize: 4096)
    var buffer = Self.encoded([Self.frame(.message, 1, [1, 2, 3, 4])])
    var half = buffer.readSlice(length: 12)!
    #expect(try decoder.decode(buffer: &half) == nil)
    #expect(throws: WireProtocolError.truncatedFrame(bufferedBytes: 12)) {
      try decoder.decodeLast(buffer: &half, seenEOF: true)
    }
  }
}

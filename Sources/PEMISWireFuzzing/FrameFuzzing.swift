internal import NIOCore
internal import PEMISWire

/// The frame decoder under fuzzing: any bytes, delivered in the chunk sizes a network might use,
/// must decode without a crash or a trap, and every frame it yields must encode back to exactly the
/// bytes it was read from (the decoder neither invents nor drops a byte).
///
/// Input layout: byte 0 picks the decoder's payload limit, byte 1 seeds the chunk sizes, the rest
/// is the stream.
public enum FrameFuzzing {
  /// Seed inputs: the wire's conversations behind the two parameter bytes.
  public static func seeds() -> [(name: String, bytes: [UInt8])] {
    WireFuzzFrames.conversations().enumerated().map { index, seed in
      (seed.name, [UInt8(truncatingIfNeeded: 16 + index * 20), UInt8(truncatingIfNeeded: index * 37 + 1)] + seed.bytes)
    }
  }

  public static func run(_ input: UnsafeRawBufferPointer) {
    guard input.count >= 2 else { return }
    let limit = Int(input[0]) * 64
    var chunkSeed = UInt32(input[1]) | 1
    let stream = UnsafeRawBufferPointer(rebasing: input[2...])

    var decoder = FrameDecoder(maxPayloadSize: limit)
    var buffer = ByteBufferAllocator().buffer(capacity: stream.count)
    var offset = 0
    var consumed = 0
    var seenEOF = false
    while !seenEOF {
      // A chunk of 1 to 64 bytes, or the rest at once: xorshift over the seed.
      chunkSeed ^= chunkSeed << 13
      chunkSeed ^= chunkSeed >> 17
      chunkSeed ^= chunkSeed << 5
      let size = chunkSeed % 5 == 0 ? stream.count - offset : Int(chunkSeed % 64) + 1
      let end = min(stream.count, offset + size)
      buffer.writeBytes(UnsafeRawBufferPointer(rebasing: stream[offset..<end]))
      offset = end
      seenEOF = offset == stream.count
      while true {
        let before = buffer.readableBytes
        let event: FrameDecoder.Event?
        do {
          event = seenEOF ? try decoder.decodeLast(buffer: &buffer, seenEOF: true) : try decoder.decode(buffer: &buffer)
        } catch {
          // A truncated last frame: the only error the decoder may report.
          precondition(error is WireProtocolError, "frame decoder threw \(error)")
          return
        }
        consumed += before - buffer.readableBytes
        guard let event else { break }
        switch event {
        case .frame(let frame):
          precondition(frame.payload.readableBytes <= limit, "a frame over the limit was buffered")
          var encoded = ByteBufferAllocator().buffer(capacity: Frame.headerSize + frame.payload.readableBytes)
          frame.encode(into: &encoded)
          // The frame is the last thing a decode call consumes (after any skipped payload).
          let start = consumed - encoded.readableBytes
          precondition(start >= 0, "the decoder yielded more bytes than it read")
          let original = UnsafeRawBufferPointer(rebasing: stream[start..<(start + encoded.readableBytes)])
          precondition(encoded.readableBytesView.elementsEqual(original), "a decoded frame does not encode to its bytes")
        case .oversized(_, _, _, let length):
          precondition(length > limit, "a frame within the limit was reported oversized")
        }
      }
    }
  }
}

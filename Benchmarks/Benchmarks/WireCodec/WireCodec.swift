import Benchmark
import NIOCore
import PEMISWire

/// The frames of one unary call with a 100-byte message, as the transport writes them:
/// CALL_START, MESSAGE, CLOSE_SEND one way; RESPONSE_START, MESSAGE, CALL_END the other.
/// (Payloads are stand-ins of realistic size; the codec does not look inside them.)
let callStart = ByteBuffer(bytes: Array(repeating: 0x2A, count: 40))
let message = ByteBuffer(bytes: Array(repeating: 0x5A, count: 100))
let callEnd = ByteBuffer(bytes: Array(repeating: 0x08, count: 4))

func encodeUnaryCall(streamID: UInt32, into buffer: inout ByteBuffer) {
  Frame.encode(kind: .callStart, streamID: streamID, payload: callStart, into: &buffer)
  Frame.encode(kind: .message, streamID: streamID, payload: message, into: &buffer)
  Frame.encode(kind: .closeSend, streamID: streamID, payload: ByteBuffer(), into: &buffer)
  Frame.encode(kind: .responseStart, streamID: streamID, payload: ByteBuffer(), into: &buffer)
  Frame.encode(kind: .message, streamID: streamID, payload: message, into: &buffer)
  Frame.encode(kind: .callEnd, streamID: streamID, payload: callEnd, into: &buffer)
}

let benchmarks: @Sendable () -> Void = {
  Benchmark.defaultConfiguration = .init(
    metrics: [.wallClock, .throughput, .mallocCountTotal, .instructions],
    scalingFactor: .kilo, maxDuration: .seconds(2))

  Benchmark("Frame encode: the 6 frames of a unary call (100 B message)") { benchmark in
    var buffer = ByteBufferAllocator().buffer(capacity: 4096)
    for i in benchmark.scaledIterations {
      buffer.clear()
      encodeUnaryCall(streamID: UInt32(i) * 2 + 1, into: &buffer)
      blackHole(buffer.readableBytes)
    }
  }

  Benchmark("Frame decode: the 6 frames of a unary call (100 B message)") { benchmark in
    var encoded = ByteBufferAllocator().buffer(capacity: 4096)
    encodeUnaryCall(streamID: 1, into: &encoded)
    benchmark.startMeasurement()
    for _ in benchmark.scaledIterations {
      var decoder = FrameDecoder(maxPayloadSize: 4 * 1024 * 1024)
      var input = encoded
      while let event = try decoder.decode(buffer: &input) { blackHole(event) }
    }
  }

  Benchmark("Frame decode: 64 calls' frames arriving in one read") { benchmark in
    var encoded = ByteBufferAllocator().buffer(capacity: 64 * 400)
    for call in 0..<64 { encodeUnaryCall(streamID: UInt32(call) * 2 + 1, into: &encoded) }
    benchmark.startMeasurement()
    for _ in benchmark.scaledIterations {
      var decoder = FrameDecoder(maxPayloadSize: 4 * 1024 * 1024)
      var input = encoded
      while let event = try decoder.decode(buffer: &input) { blackHole(event) }
    }
  }
}

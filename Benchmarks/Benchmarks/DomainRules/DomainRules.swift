import Benchmark
import Foundation
import PEMISDomain
import PEMISStore

/// A valid resident ID number (GB 11643-1999 check character computed, not typed).
let residentID: String = {
  let body = "12011620220315123"
  return body + String(IDDocuments.checkCharacter(Array(body))!)
}()
let birthDate = CalendarDate(year: 2022, month: 3, day: 15)

/// The repository's Config/calendar (2020-2026), found from this file's place in the repository.
let calendar: WorkingDayCalendar = {
  let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()
  return try! CalendarFiles.load(directory: root.appendingPathComponent("Config/calendar").path)
}()

let benchmarks: @Sendable () -> Void = {
  Benchmark.defaultConfiguration = .init(
    metrics: [.wallClock, .throughput, .mallocCountTotal, .instructions],
    scalingFactor: .kilo, maxDuration: .seconds(2))

  Benchmark("ID validation: resident ID (length, digits, checksum, birth date, gender)") { benchmark in
    for _ in benchmark.scaledIterations {
      try IDDocuments.validate(
        type: .residentID, number: residentID, birthDate: birthDate, gender: .male, field: "child.id_document_number")
    }
  }

  Benchmark("ID validation: a wrong check character, refused") { benchmark in
    let wrong = String(residentID.dropLast()) + (residentID.last == "0" ? "1" : "0")
    for _ in benchmark.scaledIterations {
      do {
        try IDDocuments.validate(type: .residentID, number: wrong, birthDate: birthDate, gender: .male, field: "id")
      } catch { blackHole(error) }
    }
  }

  Benchmark("ID masking for lists") { benchmark in
    for _ in benchmark.scaledIterations { blackHole(IDDocuments.mask(residentID)) }
  }

  Benchmark("Working days: the due date 30 working days after a date (Art. 13)") { benchmark in
    let start = CalendarDate(year: 2026, month: 9, day: 28)  // across the National Day holiday
    for _ in benchmark.scaledIterations { blackHole(try calendar.adding(workingDays: 30, to: start)) }
  }

  Benchmark("Working days: 3 working days after a date (Art. 15)") { benchmark in
    let start = CalendarDate(year: 2026, month: 4, day: 30)  // across Labour Day
    for _ in benchmark.scaledIterations { blackHole(try calendar.adding(workingDays: 3, to: start)) }
  }

  Benchmark(
    "Working days between two dates a year apart (overdue lists)",
    configuration: .init(
      metrics: [.wallClock, .throughput, .mallocCountTotal, .instructions], scalingFactor: .one,
      maxDuration: .seconds(2))
  ) { benchmark in
    let start = CalendarDate(year: 2025, month: 1, day: 1)
    let end = CalendarDate(year: 2025, month: 12, day: 31)
    for _ in benchmark.scaledIterations { blackHole(try calendar.workingDays(from: start, to: end)) }
  }
}

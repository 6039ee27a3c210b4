internal import Foundation
public import PEMISDomain

/// Reads the working-day calendar from a folder of `<year>.json` files (docs/CALENDAR.md), so a
/// new year is added by dropping in a file, without a rebuild.
public enum CalendarFiles {
  struct File: Decodable {
    struct Day: Decodable {
      var date: String
      var name: String
    }
    var year: Int
    var holidays: [Day]
    var workdays: [Day]
  }

  public static func load(directory: String) throws -> WorkingDayCalendar {
    let names: [String]
    do {
      names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") }.sorted()
    } catch {
      throw StoreError(.unavailable, "calendar: cannot read \(directory): \(error.localizedDescription)")
    }
    guard !names.isEmpty else { throw StoreError(.unavailable, "calendar: no <year>.json files in \(directory)") }
    var years: [WorkingDayCalendar.Year] = []
    for name in names {
      let path = (directory as NSString).appendingPathComponent(name)
      let file: File
      do {
        file = try JSONDecoder().decode(File.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
      } catch {
        throw StoreError(.unavailable, "calendar: \(path) is not a calendar file: \(error)")
      }
      guard name == "\(file.year).json" else {
        throw StoreError(.unavailable, "calendar: \(path) holds year \(file.year); name it \(file.year).json")
      }
      func days(_ list: [File.Day]) throws -> [CalendarDate: String] {
        var result: [CalendarDate: String] = [:]
        for day in list {
          guard let date = CalendarDate(iso: day.date) else {
            throw StoreError(.unavailable, "calendar: \(path): '\(day.date)' is not a date")
          }
          result[date] = day.name
        }
        return result
      }
      years.append(.init(year: file.year, holidays: try days(file.holidays), workdays: try days(file.workdays)))
    }
    do {
      return try WorkingDayCalendar(years: years)
    } catch {
      throw StoreError(.unavailable, "calendar: \(error)")
    }
  }
}

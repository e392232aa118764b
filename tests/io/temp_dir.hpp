// A scratch directory for file tests, removed (with its files) at the end of the scope.
#ifndef SHATTER_TESTS_IO_TEMP_DIR_HPP
#define SHATTER_TESTS_IO_TEMP_DIR_HPP

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace shatter::test {

class temp_dir {
 public:
  temp_dir() {
    char tmpl[] = "/tmp/shatter_test_XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~temp_dir() {
    for (const auto& f : files()) std::remove((path_ + "/" + f).c_str());
    ::rmdir(path_.c_str());
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

  /// The names of the files in the directory (without "." and "..").
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(path_.c_str())) {
      while (dirent* e = ::readdir(d)) {
        const std::string n = e->d_name;
        if (n != "." && n != "..") out.push_back(n);
      }
      ::closedir(d);
    }
    return out;
  }

 private:
  std::string path_;
};

}  // namespace shatter::test

#endif  // SHATTER_TESTS_IO_TEMP_DIR_HPP

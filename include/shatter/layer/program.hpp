// shatter: the data flow of a network, a list of operations over numbered batches.
#ifndef SHATTER_LAYER_PROGRAM_HPP
#define SHATTER_LAYER_PROGRAM_HPP

#include <vector>

#include "shatter/core/error.hpp"
#include "shatter/core/types.hpp"

namespace shatter {

template <class T>
class layer;

/// A network's data flow, written by its layers (see layer::emit) and read by an execution plan.
/// Values are the batches that flow through the network, numbered in the order they are made;
/// value 0 is the network's input. Each operation makes one new value: a leaf layer applied to
/// one value, or the sum `a + beta b` of two (a residual block's `x + beta F(x)`, the two
/// branches of a branch_sum). Operations are listed in an order in which they can run.
template <class T>
struct program {
  /// One operation: `leaf` applied to value `in`, or (leaf == nullptr) `in + beta * in2`.
  struct op {
    layer<T>* leaf = nullptr;
    int in = 0;
    int in2 = -1;
    int out = 0;
    T beta = T(1);
  };

  std::vector<op> ops;
  std::vector<index> rows = {0};     ///< features per sample of each value
  std::vector<int> producer = {-1};  ///< the operation that makes each value (-1: the input)

  /// Starts a program whose input has `in_rows` features per sample.
  explicit program(index in_rows) { rows[0] = in_rows; }

  /// Appends `l` applied to value `in`, making a value of `out_rows` rows; returns its number.
  int leaf(layer<T>* l, int in, index out_rows) {
    check(in);
    return append({l, in, -1, 0, T(1)}, out_rows);
  }
  /// Appends `a + beta b` for two values of equal rows; returns the new value's number.
  int sum(int a, int b, T beta) {
    check(a);
    check(b);
    require<shape_error>(rows[std::size_t(a)] == rows[std::size_t(b)],
                         "program: a sum of values with ", rows[std::size_t(a)], " and ",
                         rows[std::size_t(b)], " rows");
    return append({nullptr, a, b, 0, beta}, rows[std::size_t(a)]);
  }
  /// The number of values (the input included).
  int values() const { return int(rows.size()); }
  /// The network's output: the last value made.
  int output() const { return values() - 1; }

 private:
  void check(int v) const {
    require<config_error>(v >= 0 && v < values(), "program: no value ", v);
  }
  int append(op o, index out_rows) {
    o.out = values();
    rows.push_back(out_rows);
    producer.push_back(int(ops.size()));
    ops.push_back(o);
    return o.out;
  }
};

}  // namespace shatter

#endif  // SHATTER_LAYER_PROGRAM_HPP

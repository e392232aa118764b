// conv2d: agreement with a direct loop, finite-difference gradients, chunking, bad shapes.
#include <catch2/catch.hpp>

#include "../support/gradcheck.hpp"
#include "shatter/core/threads.hpp"
#include "shatter/layer/conv2d.hpp"

using namespace shatter;

namespace {
/// Direct definition of the convolution, for reference.
matrix<double> naive_conv(const conv2d<double>& c, const matrix<double>& x) {
  const auto in = c.input_shape(), out = c.output_shape();
  const Eigen::Index k = c.kernel(), s = c.stride(), p = c.padding();
  matrix<double> y(out.size(), x.cols());
  for (Eigen::Index n = 0; n < x.cols(); ++n)
    for (Eigen::Index o = 0; o < out.channels; ++o)
      for (Eigen::Index i = 0; i < out.height; ++i)
        for (Eigen::Index j = 0; j < out.width; ++j) {
          double acc = c.has_bias() ? const_cast<conv2d<double>&>(c).bias()(o, 0) : 0.0;
          for (Eigen::Index ch = 0; ch < in.channels; ++ch)
            for (Eigen::Index u = 0; u < k; ++u)
              for (Eigen::Index v = 0; v < k; ++v) {
                const Eigen::Index iy = i * s - p + u, ix = j * s - p + v;
                if (iy < 0 || iy >= in.height || ix < 0 || ix >= in.width) continue;
                acc += c.weight()(o, (ch * k + u) * k + v) *
                       x((ch * in.height + iy) * in.width + ix, n);
              }
          y((o * out.height + i) * out.width + j, n) = acc;
        }
  return y;
}

void randomise(conv2d<double>& c, rng& g) {
  for (Eigen::Index i = 0; i < c.weight().size(); ++i) c.weight()(i) = g.normal();
  if (c.has_bias())
    for (Eigen::Index i = 0; i < c.bias().size(); ++i) c.bias()(i) = g.normal();
}

struct conv_case {
  image_shape in;
  Eigen::Index out, k, stride, pad;
  bool bias;
};
const conv_case cases[] = {
    {{2, 5, 5}, 3, 3, 1, 1, true},
    {{3, 6, 5}, 2, 3, 2, 1, false},
    {{1, 4, 4}, 2, 1, 1, 0, true},
    {{2, 7, 6}, 3, 3, 2, 0, true},
    {{2, 3, 3}, 2, 5, 1, 2, false},
    {{1, 1, 1}, 2, 3, 1, 1, true},
    {{2, 5, 4}, 1, 2, 3, 1, true},
    // channel counts that are whole register tiles: the direct (offset_gemm) products
    {{8, 6, 5}, 8, 3, 1, 1, true},
    {{8, 7, 6}, 16, 5, 1, 2, false},
    // strided, split into phases: taps of several phases, and phases no tap reads (k = 1)
    {{8, 6, 8}, 8, 3, 2, 1, true},
    {{8, 9, 6}, 8, 5, 3, 2, false},
    {{8, 4, 4}, 8, 1, 2, 0, true},
    {{3, 6, 4}, 2, 3, 2, 1, true},
    // 3 x 3, stride 1, padding 1, even sides, whole tiles: Winograd's F(2x2, 3x3)
    {{8, 6, 8}, 8, 3, 1, 1, true},
    {{16, 4, 6}, 8, 3, 1, 1, false},
    {{8, 2, 2}, 16, 3, 1, 1, true},
};
}  // namespace

TEST_CASE("conv2d output shapes follow (H + 2p - k) / s + 1") {
  conv2d<float> c({3, 32, 32}, 16, 3, 1, 1, false);
  CHECK(c.output_shape() == image_shape{16, 32, 32});
  conv2d<float> d({32, 32, 32}, 32, 3, 2, 1, false);
  CHECK(d.output_shape() == image_shape{32, 16, 16});
  CHECK(d.weight().rows() == 32);
  CHECK(d.weight().cols() == 32 * 9);
  CHECK(d.fan_in() == 288);
  CHECK(d.describe() == "conv2d(32 x 32 x 32 -> 32 x 16 x 16, 3x3, stride 2, pad 1)");
}

TEST_CASE("conv2d forward equals the direct definition, with several chunk sizes") {
  rng g(11);
  for (const auto& cc : cases) {
    conv2d<double> c(cc.in, cc.out, cc.k, cc.stride, cc.pad, cc.bias);
    randomise(c, g);
    matrix<double> x = matrix<double>::Random(cc.in.size(), 5);
    const matrix<double> ref = naive_conv(c, x);
    for (Eigen::Index chunk : {Eigen::Index(1), Eigen::Index(40), Eigen::Index(1) << 20}) {
      conv2d<double>::set_chunk_elements(chunk);
      INFO(c.describe() << " chunk " << chunk);
      CHECK((c.forward(x, mode::train) - ref).cwiseAbs().maxCoeff() < 1e-12);
    }
  }
  conv2d<double>::set_chunk_elements(Eigen::Index(1) << 20);
}

TEST_CASE("conv2d gradients match finite differences") {
  rng g(12);
  for (const auto& cc : cases) {
    for (Eigen::Index chunk : {Eigen::Index(30), Eigen::Index(1) << 20}) {
      conv2d<double>::set_chunk_elements(chunk);
      conv2d<double> c(cc.in, cc.out, cc.k, cc.stride, cc.pad, cc.bias);
      randomise(c, g);
      const matrix<double> x = test::away_from_zero(cc.in.size(), 3, g);
      const auto rep = test::check_gradients(c, x, g);
      INFO(c.describe() << " chunk " << chunk);
      CHECK(rep.input_error < 1e-7);
      CHECK(rep.param_error < 1e-7);
    }
  }
  conv2d<double>::set_chunk_elements(Eigen::Index(1) << 20);
}

TEST_CASE("conv2d float agrees with double and skips the input gradient when asked") {
  rng g(13);
  conv2d<double> cd({4, 8, 8}, 6, 3, 1, 1, true);
  randomise(cd, g);
  conv2d<float> cf({4, 8, 8}, 6, 3, 1, 1, true);
  cf.weight() = cd.weight().cast<float>();
  cf.bias() = cd.bias().cast<float>();
  const matrix<double> x = matrix<double>::Random(256, 7);
  const matrix<float> xf = x.cast<float>();
  CHECK((cf.forward(xf, mode::train).cast<double>() - cd.forward(x, mode::train))
            .cwiseAbs()
            .maxCoeff() < 1e-4);
  const matrix<double> dy = matrix<double>::Random(6 * 64, 7);
  const matrix<double> dx = cd.backward(dy);
  const matrix<float> dxf = cf.backward(dy.cast<float>());
  CHECK((dxf.cast<double>() - dx).cwiseAbs().maxCoeff() < 1e-4);
  cf.set_input_gradient(false);
  cf.forward(xf, mode::train);
  CHECK(cf.backward(dy.cast<float>()).size() == 0);
  CHECK((cf.weight_grad().cast<double>() - cd.weight_grad()).cwiseAbs().maxCoeff() < 1e-3);
}

TEST_CASE("conv2d rejects bad configurations and batches, naming the layer") {
  CHECK_THROWS_AS(conv2d<float>({0, 4, 4}, 2, 3), config_error);
  CHECK_THROWS_AS(conv2d<float>({1, 4, 4}, 2, 0), config_error);
  CHECK_THROWS_AS(conv2d<float>({1, 4, 4}, 2, 3, 0), config_error);
  CHECK_THROWS_WITH(conv2d<float>({1, 2, 2}, 2, 5, 1, 1), Catch::Contains("does not fit"));
  conv2d<float> c({2, 4, 4}, 3, 3, 1, 1);
  matrix<float> x(31, 2);
  CHECK_THROWS_WITH(c.forward(x, mode::train),
                    Catch::Contains("conv2d(2 x 4 x 4") && Catch::Contains("31 x 2"));
}

TEST_CASE("conv2d gives the same bits on one and two threads") {
  rng g(14);
  const int before = threads();
  for (const auto& cc :
       {conv_case{{6, 9, 7}, 5, 3, 1, 1, true}, conv_case{{8, 9, 7}, 16, 3, 1, 1, true},
        conv_case{{4, 8, 8}, 3, 3, 2, 1, true}, conv_case{{8, 8, 6}, 16, 3, 1, 1, true},
        conv_case{{64, 8, 8}, 64, 3, 1, 1, false}}) {  // dW summed over parts in column blocks
    conv2d<double> c(cc.in, cc.out, cc.k, cc.stride, cc.pad, cc.bias);
    randomise(c, g);
    const matrix<double> x = matrix<double>::Random(cc.in.size(), 9);
    const matrix<double> dy = matrix<double>::Random(c.output_shape().size(), 9);
    conv2d<double>::set_chunk_elements(3000);  // several chunks
    matrix<double> y[2], dx[2], dw[2];
    for (int t : {1, 2}) {
      set_threads(t);
      y[t - 1] = c.forward(x, mode::train);
      dx[t - 1] = c.backward(dy);
      dw[t - 1] = c.weight_grad();
    }
    set_threads(before);
    conv2d<double>::set_chunk_elements(Eigen::Index(1) << 20);
    INFO(c.describe());
    CHECK((y[0] - naive_conv(c, x)).cwiseAbs().maxCoeff() < 1e-12);
    CHECK(y[0] == y[1]);
    CHECK(dx[0] == dx[1]);
    CHECK(dw[0] == dw[1]);
  }
}

TEST_CASE("conv2d float with whole-tile channel counts agrees with double") {
  rng g(15);
  conv2d<double> cd({16, 9, 11}, 32, 3, 1, 1, true);
  randomise(cd, g);
  conv2d<float> cf({16, 9, 11}, 32, 3, 1, 1, true);
  cf.weight() = cd.weight().cast<float>();
  cf.bias() = cd.bias().cast<float>();
  const matrix<double> x = matrix<double>::Random(16 * 99, 5);
  const matrix<double> dy = matrix<double>::Random(32 * 99, 5);
  const matrix<double> y = cd.forward(x, mode::train);
  CHECK((y - naive_conv(cd, x)).cwiseAbs().maxCoeff() < 1e-12);
  const matrix<float> xf = x.cast<float>();  // the layer keeps a reference to its input
  CHECK((cf.forward(xf, mode::train).cast<double>() - y).cwiseAbs().maxCoeff() < 1e-4);
  const matrix<double> dx = cd.backward(dy);
  CHECK((cf.backward(dy.cast<float>()).cast<double>() - dx).cwiseAbs().maxCoeff() < 1e-4);
  CHECK((cf.weight_grad().cast<double>() - cd.weight_grad()).cwiseAbs().maxCoeff() < 1e-3);
}

TEST_CASE("conv2d passes an empty batch through with zero gradients") {
  conv2d<double> c({8, 5, 5}, 8, 3, 1, 1, true);
  rng g(16);
  randomise(c, g);
  const matrix<double> x(8 * 25, 0);
  CHECK(c.forward(x, mode::train).cols() == 0);
  CHECK(c.backward(matrix<double>(8 * 25, 0)).cols() == 0);
  CHECK(c.weight_grad().cwiseAbs().maxCoeff() == 0.0);
  CHECK(c.bias_grad().cwiseAbs().maxCoeff() == 0.0);
}

TEST_CASE("conv2d by Winograd's F(2x2, 3x3) agrees with the direct products") {
  rng g(17);
  CHECK(conv2d<float>({32, 32, 32}, 16, 3, 1, 1, false).uses_winograd());
  CHECK_FALSE(conv2d<float>({3, 32, 32}, 16, 3, 1, 1, false).uses_winograd());   // 3 channels
  CHECK_FALSE(conv2d<float>({32, 32, 32}, 32, 3, 2, 1, false).uses_winograd());  // stride 2
  CHECK_FALSE(conv2d<float>({16, 9, 11}, 32, 3, 1, 1, false).uses_winograd());   // odd sides
  // Winograd in small chunks (one image each), the direct products, and Winograd in one chunk
  // of several blocks of tiles (the 24 x 24 images: 12 x 13 tiles each).
  for (const auto& cc :
       {conv_case{{8, 6, 8}, 8, 3, 1, 1, true}, conv_case{{16, 10, 4}, 32, 3, 1, 1, true},
        conv_case{{32, 8, 8}, 16, 3, 1, 1, false}, conv_case{{8, 24, 24}, 16, 3, 1, 1, true}}) {
    conv2d<double> c(cc.in, cc.out, cc.k, cc.stride, cc.pad, cc.bias);
    randomise(c, g);
    REQUIRE(c.uses_winograd());
    const matrix<double> x = matrix<double>::Random(cc.in.size(), 7);
    const matrix<double> dy = matrix<double>::Random(c.output_shape().size(), 7);
    matrix<double> y[3], dx[3], dw[3], db[3];
    for (int run : {0, 1, 2}) {
      conv2d<double>::set_winograd(run != 1);
      conv2d<double>::set_chunk_elements(run == 0 ? 5000 : Eigen::Index(1) << 20);
      y[run] = c.forward(x, mode::train);
      dx[run] = c.backward(dy);
      dw[run] = c.weight_grad();
      if (cc.bias) db[run] = c.bias_grad();
    }
    conv2d<double>::set_winograd(true);
    conv2d<double>::set_chunk_elements(Eigen::Index(1) << 20);
    INFO(c.describe());
    CHECK((y[0] - naive_conv(c, x)).cwiseAbs().maxCoeff() < 1e-12);
    for (int run : {0, 2}) {
      INFO((run == 0 ? "small chunks" : "one chunk"));
      CHECK((y[run] - y[1]).cwiseAbs().maxCoeff() < 1e-12);
      CHECK((dx[run] - dx[1]).cwiseAbs().maxCoeff() < 1e-12);
      CHECK((dw[run] - dw[1]).cwiseAbs().maxCoeff() < 1e-11);
      if (cc.bias) CHECK((db[run] - db[1]).cwiseAbs().maxCoeff() < 1e-11);
    }
  }
}

TEST_CASE("conv2d by Winograd in float stays within float rounding of double") {
  rng g(18);
  for (Eigen::Index out : {8, 16, 32}) {  // dL/dW by both of its kernels (channels per packet)
    conv2d<double> cd({16, 24, 20}, out, 3, 1, 1, true);  // 12 x 11 tiles: several blocks
    randomise(cd, g);
    conv2d<float> cf({16, 24, 20}, out, 3, 1, 1, true);
    REQUIRE(cf.uses_winograd());
    cf.weight() = cd.weight().cast<float>();
    cf.bias() = cd.bias().cast<float>();
    const matrix<double> x = matrix<double>::Random(16 * 480, 5);
    const matrix<double> dy = matrix<double>::Random(out * 480, 5);
    const matrix<float> xf = x.cast<float>();
    const matrix<double> y = cd.forward(x, mode::train);
    const matrix<double> dx = cd.backward(dy);
    INFO("out channels " << out);
    CHECK((cf.forward(xf, mode::train).cast<double>() - y).cwiseAbs().maxCoeff() < 1e-4);
    CHECK((cf.backward(dy.cast<float>()).cast<double>() - dx).cwiseAbs().maxCoeff() < 1e-4);
    CHECK((cf.weight_grad().cast<double>() - cd.weight_grad()).cwiseAbs().maxCoeff() < 1e-3);
  }
}

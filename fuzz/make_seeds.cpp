// Writes valid seed files for the fuzz targets into <dir>/{safetensors,checkpoint,idx,cifar10}/.
//   make_seeds <dir>
#include <sys/stat.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "shatter/io/checkpoint.hpp"
#include "shatter/network/builders.hpp"

namespace {

void write(const std::string& path, const std::vector<unsigned char>& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) {
    std::perror(path.c_str());
    std::exit(1);
  }
  std::fclose(f);
}

std::vector<unsigned char> gzip(const std::vector<unsigned char>& in) {
  z_stream zs{};
  if (deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::exit(1);
  std::vector<unsigned char> out(deflateBound(&zs, in.size()) + 64);
  zs.next_in = const_cast<unsigned char*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) std::exit(1);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::vector<unsigned char> idx(std::vector<std::uint32_t> dims, unsigned char fill) {
  std::vector<unsigned char> b = {0, 0, 8, static_cast<unsigned char>(dims.size())};
  std::size_t count = 1;
  for (auto d : dims) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(d >> s));
    count *= d;
  }
  for (std::size_t i = 0; i < count; ++i) b.push_back(static_cast<unsigned char>(fill + 37 * i));
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace shatter;
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds <dir>\n");
    return 2;
  }
  const std::string dir = argv[1];
  for (const char* sub : {"", "/safetensors", "/checkpoint", "/idx", "/cifar10"})
    ::mkdir((dir + sub).c_str(), 0755);

  // safetensors: a few small files of different dtypes and ranks, with metadata.
  {
    io::safetensors_file f;
    matrix<float> w(2, 3);
    w << 1, -2, 3.5f, 0, 1e-3f, -7;
    f.tensors["0.weight"] = io::to_tensor(w);
    f.tensors["0.bias"] = io::to_tensor(matrix<double>::Constant(2, 1, 0.25).eval());
    f.tensors["steps"] = io::to_tensor(std::vector<std::int64_t>{42});
    f.tensors["bytes"] = io::to_tensor(std::vector<std::uint8_t>{1, 2, 3});
    f.metadata["format"] = "pt";
    f.metadata["note"] = "caf\xc3\xa9 \"q\"";
    write(dir + "/safetensors/small.safetensors", io::encode_safetensors(f));
    io::safetensors_file e;
    write(dir + "/safetensors/empty.safetensors", io::encode_safetensors(e));
    io::tensor t;
    t.type = io::dtype::F32;
    t.shape = {2, 1, 2, 2};
    t.data.assign(32, 0x3f);
    e.tensors["conv.weight"] = t;
    write(dir + "/safetensors/conv.safetensors", io::encode_safetensors(e));
  }
  // checkpoint: the network checkpoint_fuzz.cpp loads into (keep the two in sync).
  {
    rng g(1);
    mlp_spec s;
    s.in = 3;
    s.width = 4;
    s.hidden_layers = 1;
    s.out = 2;
    s.batch_norm = true;
    auto net = plain_relu_mlp<float>(s, g);
    matrix<float> momentum = matrix<float>::Constant(4, 3, 0.5f);
    save_checkpoint(dir + "/checkpoint/ckpt.safetensors", net,
                    {{"momentum.0.weight", &momentum, nullptr}}, g, 1, 10, {{"arch", "fuzz"}});
  }
  // IDX: images (3-D) and labels (1-D), plain and gzip-compressed.
  {
    const auto images = idx({2, 3, 3}, 5);
    const auto labels = idx({4}, 0);
    std::vector<unsigned char> lab = labels;
    for (std::size_t i = 8; i < lab.size(); ++i) lab[i] = static_cast<unsigned char>(i % 10);
    write(dir + "/idx/images-idx3-ubyte", images);
    write(dir + "/idx/labels-idx1-ubyte", lab);
    write(dir + "/idx/images-idx3-ubyte.gz", gzip(images));
    write(dir + "/idx/labels-idx1-ubyte.gz", gzip(lab));
  }
  // CIFAR-10: two records (label byte + 3072 pixel bytes each).
  {
    std::vector<unsigned char> b;
    for (int r = 0; r < 2; ++r) {
      b.push_back(static_cast<unsigned char>(3 + 4 * r));
      for (int i = 0; i < 3072; ++i) b.push_back(static_cast<unsigned char>(i * 7 + r));
    }
    write(dir + "/cifar10/two_records.bin", b);
  }
  std::printf("seeds written to %s\n", dir.c_str());
  return 0;
}

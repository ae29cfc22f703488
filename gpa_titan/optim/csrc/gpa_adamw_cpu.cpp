// GPA-AdamW step for CPU tensors: one pass over memory per parameter, vectorized with
// ATen's Vectorized<T>, each tensor split across threads by at::parallel_for.
// Same math as gpa_titan.optim.gpa_adamw.gpa_adamw_update_ (coefficients c[0..9]).
#include <torch/extension.h>

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <array>
#include <cmath>
#include <vector>

namespace {

constexpr int64_t kGrain = 1 << 15;  // elements below which a tensor stays on one thread

template <typename T>
void update_range(T* y, T* z, const T* g, T* m, T* v, int64_t begin, int64_t end, const std::array<T, 10>& c) {
  using Vec = at::vec::Vectorized<T>;
  const Vec c0(c[0]), c1(c[1]), c2(c[2]), c3(c[3]), c4(c[4]), c5(c[5]), c6(c[6]), c7(c[7]), c8(c[8]), c9(c[9]);
  int64_t i = begin;
  for (; i + Vec::size() <= end; i += Vec::size()) {
    const Vec G = Vec::loadu(g + i);
    Vec M = Vec::loadu(m + i);
    Vec V = Vec::loadu(v + i);
    const Vec Y = Vec::loadu(y + i);
    const Vec Z = Vec::loadu(z + i);
    M = M + (G - M) * c0;
    V = V * c1 + G * G * c2;
    const Vec U = M / (V.sqrt() * c3 + c4);
    M.store(m + i);
    V.store(v + i);
    (Y * c5 + Z * c6 + U * c7).store(y + i);  // uses z_t, before z moves
    (Z - Z * c8 + U * c9).store(z + i);
  }
  for (; i < end; ++i) {
    const T G = g[i];
    const T M = m[i] + (G - m[i]) * c[0];
    const T V = v[i] * c[1] + G * G * c[2];
    const T U = M / (std::sqrt(V) * c[3] + c[4]);
    const T Z = z[i];
    m[i] = M;
    v[i] = V;
    y[i] = y[i] * c[5] + Z * c[6] + U * c[7];
    z[i] = Z - Z * c[8] + U * c[9];
  }
}

void check(const std::vector<at::Tensor>& ts, const at::Tensor& ref, const char* name) {
  TORCH_CHECK(ts.size() > 0 || ref.numel() == 0, name, ": empty list");
  for (const auto& t : ts) {
    TORCH_CHECK(t.device().is_cpu(), name, ": expected CPU tensors");
    TORCH_CHECK(t.is_contiguous(), name, ": expected contiguous tensors");
    TORCH_CHECK(t.scalar_type() == ref.scalar_type(), name, ": all tensors must share one dtype");
  }
}

}  // namespace

void gpa_adamw_step(
    std::vector<at::Tensor> ys,
    std::vector<at::Tensor> zs,
    std::vector<at::Tensor> gs,
    std::vector<at::Tensor> ms,
    std::vector<at::Tensor> vs,
    std::vector<double> coefs) {
  const size_t n = ys.size();
  TORCH_CHECK(zs.size() == n && gs.size() == n && ms.size() == n && vs.size() == n, "list lengths differ");
  TORCH_CHECK(coefs.size() == 10, "expected 10 coefficients");
  if (n == 0) return;
  for (const auto* list : {&ys, &zs, &gs, &ms, &vs}) check(*list, ys[0], "gpa_adamw_step");
  for (size_t k = 0; k < n; ++k) {
    const int64_t numel = ys[k].numel();
    TORCH_CHECK(zs[k].numel() == numel && gs[k].numel() == numel && ms[k].numel() == numel && vs[k].numel() == numel,
                "tensor ", k, ": sizes differ");
  }
  AT_DISPATCH_FLOATING_TYPES(ys[0].scalar_type(), "gpa_adamw_step", [&] {
    std::array<scalar_t, 10> c;
    for (int j = 0; j < 10; ++j) c[j] = static_cast<scalar_t>(coefs[j]);
    for (size_t k = 0; k < n; ++k) {
      scalar_t* y = ys[k].data_ptr<scalar_t>();
      scalar_t* z = zs[k].data_ptr<scalar_t>();
      const scalar_t* g = gs[k].data_ptr<scalar_t>();
      scalar_t* m = ms[k].data_ptr<scalar_t>();
      scalar_t* v = vs[k].data_ptr<scalar_t>();
      at::parallel_for(0, ys[k].numel(), kGrain, [&](int64_t begin, int64_t end) {
        update_range<scalar_t>(y, z, g, m, v, begin, end, c);
      });
    }
  });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gpa_adamw_step", &gpa_adamw_step, "GPA-AdamW step on lists of contiguous CPU tensors (in place)");
}

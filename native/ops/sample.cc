#include "sample.h"
#include <stdexcept>
namespace grpo {
void sample_cpu(const SampleArgs&) { throw std::runtime_error("sample: not implemented yet"); }
}

#include "logprobs.h"
#include <stdexcept>
namespace grpo {
void logprobs_cpu(const LogprobsArgs&) { throw std::runtime_error("logprobs: not implemented yet"); }
}

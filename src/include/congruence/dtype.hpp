// Element types the kernels read, and their conversion to double.
#pragma once
#include <cstdint>
#include <cstring>

namespace congruence {

enum class DType : int { float16 = 0, bfloat16 = 1, float32 = 2, float64 = 3 };

inline float half_bits_to_float(std::uint16_t h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    std::uint32_t exp = (h >> 10) & 0x1Fu;
    std::uint32_t mant = h & 0x3FFu;
    std::uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: renormalise
            exp = 127 - 15 + 1;
            while ((mant & 0x400u) == 0) {
                mant <<= 1;
                --exp;
            }
            mant &= 0x3FFu;
            bits = sign | (exp << 23) | (mant << 13);
        }
    } else if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (mant << 13);  // inf / nan
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

inline float bf16_bits_to_float(std::uint16_t b) {
    const std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

template <DType D> struct Elem;
template <> struct Elem<DType::float16> {
    using storage = std::uint16_t;
    static double load(const storage* p) { return half_bits_to_float(*p); }
};
template <> struct Elem<DType::bfloat16> {
    using storage = std::uint16_t;
    static double load(const storage* p) { return bf16_bits_to_float(*p); }
};
template <> struct Elem<DType::float32> {
    using storage = float;
    static double load(const storage* p) { return *p; }
};
template <> struct Elem<DType::float64> {
    using storage = double;
    static double load(const storage* p) { return *p; }
};

}  // namespace congruence

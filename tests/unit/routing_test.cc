// Placeholder: filled by the orders work (issue 4).
#include <catch2/catch.hpp>

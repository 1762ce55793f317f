/* A small SWIG interface: the input of tests/test_generated_real.py. */
%module geometry
%{
#include "geometry.h"
%}

%include "std_string.i"

%inline %{
struct Point {
    double x;
    double y;
};

double distance(const Point &a, const Point &b);
%}

class Shape {
public:
    virtual ~Shape();
    virtual double area() const = 0;
    std::string name() const;
};

class Circle : public Shape {
public:
    Circle(double radius);
    double area() const;
private:
    double radius_;
};

// The Counter's behaviour; its meta-object code comes from moc at build time.
#include "counter.h"

#include <QDebug>

Counter::Counter(QObject *parent) : QObject(parent) {}

void Counter::setValue(int value)
{
    if (value == m_value)
        return;
    m_value = value;
    emit valueChanged(m_value);
}

void Counter::reset()
{
    qDebug() << "reset from" << m_value;
    setValue(0);
}

#include "moc_counter.cpp"
